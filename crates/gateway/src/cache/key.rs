//! What identifies an answer: the exact key (every field that can change
//! it) and, for the semantic tier, the partition (every such field except
//! the wording of the question) and the question's text.
//!
//! Fields are written into SHA-256 tagged and length-prefixed, so no two
//! different requests share an encoding. Left out on purpose: the request
//! id, the prefix-cache salt (a placement hint, not a change of answer),
//! whether the client streams (a stream and a whole answer share entries)
//! and a route's cost ceiling.

use crate::config::cache::SemanticText;
use backend_api::{ContentPart, OutputConstraint, Prompt, Role, ToolChoice, ValidatedRequest};
use sha2::{Digest, Sha256};

/// The keys of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Fingerprint {
    /// Hex SHA-256 of everything.
    pub exact: String,
    /// Hex SHA-256 of everything but `text`; `None` when the request has no
    /// question to compare (the last turn is not a user's text).
    pub partition: Option<String>,
    /// What the semantic tier embeds and the guard compares.
    pub text: String,
}

/// Who may share the entry (`key:ID`, `user:ID` or `global`) and the
/// client's own partition.
pub struct Tenant<'a> {
    pub scope: &'a str,
    pub namespace: Option<&'a str>,
    /// The output guardrails that apply (they shape what is stored).
    pub guards: Option<&'a str>,
}

struct Writer(Sha256);

impl Writer {
    fn tag(&mut self, t: u8) -> &mut Self {
        self.0.update([t]);
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.update((b.len() as u64).to_le_bytes());
        self.0.update(b);
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }
    fn opt(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.tag(1).str(s),
            None => self.tag(0),
        }
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.update(v.to_le_bytes());
        self
    }
    fn f32(&mut self, v: f32) -> &mut Self {
        // -0.0 and 0.0 ask for the same thing.
        self.0.update((if v == 0.0 { 0.0f32 } else { v }).to_bits().to_le_bytes());
        self
    }
    fn hex(self) -> String {
        self.0.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Everything about the request except its prompt.
fn settings(w: &mut Writer, model: &str, tenant: &Tenant, r: &ValidatedRequest) {
    w.tag(b'M').str(model);
    w.tag(b'T').str(tenant.scope).opt(tenant.namespace).opt(tenant.guards);
    let s = &r.sampling;
    w.tag(b'S')
        .f32(s.temperature)
        .f32(s.top_p)
        .u64(u64::from(s.top_k))
        .f32(s.presence_penalty)
        .f32(s.frequency_penalty);
    match s.seed {
        Some(seed) => w.tag(1).u64(seed),
        None => w.tag(0),
    };
    let st = &r.stop;
    w.tag(b'L')
        .u64(st.max_tokens.map_or(u64::MAX, u64::from))
        .u64(u64::from(st.min_tokens))
        .u64(u64::from(st.ignore_eos));
    w.u64(st.stop.len() as u64);
    for s in &st.stop {
        w.str(s);
    }
    w.tag(b'P').u64(r.logprobs.map_or(u64::MAX, u64::from));
    match &r.demands.output {
        None => w.tag(b'o'),
        Some(OutputConstraint::JsonObject) => w.tag(b'O').tag(1),
        Some(OutputConstraint::JsonSchema { name, schema, strict }) => {
            w.tag(b'O').tag(2).str(name).str(&schema.to_string()).tag(u8::from(*strict))
        }
    };
    match &r.tools {
        None => {
            w.tag(b'n');
        }
        Some(t) => {
            w.tag(b'F').u64(t.defs.len() as u64).tag(u8::from(t.parallel));
            for d in &t.defs {
                w.str(&d.name).opt(d.description.as_deref()).str(&d.parameters.to_string()).tag(u8::from(d.strict));
            }
            match &t.choice {
                ToolChoice::Auto => w.tag(0),
                ToolChoice::None => w.tag(1),
                ToolChoice::Required => w.tag(2),
                ToolChoice::Named(n) => w.tag(3).str(n),
            };
        }
    }
}

fn turn(w: &mut Writer, t: &backend_api::ChatTurn) {
    w.tag(b'R').str(t.role.as_str()).opt(t.name.as_deref()).opt(t.tool_call_id.as_deref());
    w.u64(t.content.len() as u64);
    for p in &t.content {
        match p {
            ContentPart::Text(s) => w.tag(b't').str(s),
            ContentPart::Image { url } => w.tag(b'i').str(url),
        };
    }
    w.u64(t.tool_calls.len() as u64);
    for c in &t.tool_calls {
        w.str(&c.id).str(&c.name).str(&c.arguments);
    }
}

/// The keys of `r` sent to `model` (a route's or a model's own name) by `tenant`.
pub fn fingerprint(model: &str, tenant: &Tenant, r: &ValidatedRequest, mode: SemanticText) -> Fingerprint {
    let mut exact = Writer(Sha256::new());
    settings(&mut exact, model, tenant, r);
    let mut part = Writer(Sha256::new());
    settings(&mut part, model, tenant, r);
    let (text, partition) = match &r.prompt {
        Prompt::Text(t) => {
            exact.tag(b'X').str(t);
            part.tag(b'X');
            (t.clone(), true)
        }
        Prompt::Chat(turns) => {
            exact.tag(b'C').u64(turns.len() as u64);
            for t in turns {
                turn(&mut exact, t);
            }
            let last_is_question =
                turns.last().is_some_and(|t| t.role == Role::User && t.first_media().is_none() && !t.text().is_empty());
            match mode {
                SemanticText::LastUser => {
                    part.tag(b'C').u64(turns.len() as u64);
                    let n = turns.len().saturating_sub(1);
                    for t in &turns[..n] {
                        turn(&mut part, t);
                    }
                    let text = turns.last().map(|t| t.text()).unwrap_or_default();
                    (text, last_is_question)
                }
                SemanticText::Conversation => {
                    part.tag(b'V').u64(turns.len() as u64);
                    for t in turns {
                        part.str(t.role.as_str());
                    }
                    let plain = turns.iter().all(|t| t.first_media().is_none() && t.tool_calls.is_empty());
                    let text = turns.iter().map(|t| t.text()).collect::<Vec<_>>().join("\n");
                    (text, last_is_question && plain)
                }
            }
        }
    };
    Fingerprint { exact: exact.hex(), partition: partition.then(|| part.hex()), text }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backend_api::{ChatTurn, Demands, SamplingParams, StopParams, ToolCall, ToolDef, Tools, ValidatedRequest};
    use serde_json::json;

    fn base() -> ValidatedRequest {
        ValidatedRequest {
            request_id: "r1".into(),
            model: "m".into(),
            prompt: Prompt::Chat(vec![ChatTurn::new(Role::System, "be brief"), ChatTurn::new(Role::User, "hi there")]),
            sampling: SamplingParams::greedy(),
            stop: StopParams { max_tokens: Some(16), ..Default::default() },
            logprobs: None,
            cache_salt: None,
            tools: None,
            demands: Demands::default(),
        }
    }

    fn key(r: &ValidatedRequest) -> Fingerprint {
        fingerprint("m", &Tenant { scope: "key:a", namespace: None, guards: None }, r, SemanticText::LastUser)
    }

    fn chat(r: &mut ValidatedRequest) -> &mut Vec<ChatTurn> {
        match &mut r.prompt {
            Prompt::Chat(t) => t,
            Prompt::Text(_) => unreachable_chat(),
        }
    }

    #[allow(clippy::panic)]
    fn unreachable_chat() -> ! {
        panic!("the base request is a chat")
    }

    #[test]
    fn every_field_that_changes_the_answer_changes_the_key() {
        let b = key(&base());
        // Not part of the answer: same key.
        let mut same = base();
        same.request_id = "other".into();
        same.cache_salt = Some("key:a".into());
        same.demands.stream = true;
        same.demands.max_cost_usd = Some(1.0);
        assert_eq!(key(&same), b);

        let tools = Tools {
            defs: vec![ToolDef { name: "f".into(), description: None, parameters: json!({}), strict: false }],
            choice: ToolChoice::Auto,
            parallel: true,
        };
        type Change = Box<dyn Fn(&mut ValidatedRequest)>;
        let changes: Vec<(&str, Change)> = vec![
            ("user text", Box::new(|r| chat(r)[1] = ChatTurn::new(Role::User, "hi there!"))),
            ("system prompt", Box::new(|r| chat(r)[0] = ChatTurn::new(Role::System, "be long"))),
            ("role", Box::new(|r| chat(r)[0].role = Role::User)),
            ("name", Box::new(|r| chat(r)[1].name = Some("bob".into()))),
            ("image part", Box::new(|r| chat(r)[1].content.push(ContentPart::Image { url: "data:x".into() }))),
            (
                "history tool call",
                Box::new(|r| {
                    let mut t = ChatTurn::new(Role::Assistant, "");
                    t.tool_calls.push(ToolCall { id: "c".into(), name: "f".into(), arguments: "{}".into() });
                    chat(r).insert(1, t);
                }),
            ),
            ("temperature", Box::new(|r| r.sampling.temperature = 0.5)),
            ("top_p", Box::new(|r| r.sampling.top_p = 0.9)),
            ("top_k", Box::new(|r| r.sampling.top_k = 5)),
            ("seed", Box::new(|r| r.sampling.seed = Some(1))),
            ("presence", Box::new(|r| r.sampling.presence_penalty = 0.1)),
            ("frequency", Box::new(|r| r.sampling.frequency_penalty = 0.1)),
            ("max_tokens", Box::new(|r| r.stop.max_tokens = Some(17))),
            ("stop", Box::new(|r| r.stop.stop = vec!["\n".into()])),
            ("min_tokens", Box::new(|r| r.stop.min_tokens = 2)),
            ("ignore_eos", Box::new(|r| r.stop.ignore_eos = true)),
            ("logprobs", Box::new(|r| r.logprobs = Some(0))),
            ("json", Box::new(|r| r.demands.output = Some(OutputConstraint::JsonObject))),
            (
                "schema",
                Box::new(|r| {
                    r.demands.output =
                        Some(OutputConstraint::JsonSchema { name: "s".into(), schema: json!({}), strict: true })
                }),
            ),
            ("tools", Box::new(move |r| r.tools = Some(tools.clone()))),
            ("text prompt", Box::new(|r| r.prompt = Prompt::Text("hi there".into()))),
        ];
        for (what, change) in &changes {
            let mut r = base();
            change(&mut r);
            assert_ne!(key(&r).exact, b.exact, "{what} must change the exact key");
        }
        let mut r = base();
        r.tools = Some(Tools {
            defs: vec![ToolDef { name: "f".into(), description: None, parameters: json!({}), strict: false }],
            choice: ToolChoice::Auto,
            parallel: true,
        });
        let with_tools = key(&r).exact;
        for choice in [ToolChoice::None, ToolChoice::Required, ToolChoice::Named("f".into())] {
            let mut c = r.clone();
            if let Some(t) = c.tools.as_mut() {
                t.choice = choice;
            }
            assert_ne!(key(&c).exact, with_tools);
        }
        let other = |scope: &str, ns: Option<&str>| {
            fingerprint("m", &Tenant { scope, namespace: ns, guards: None }, &base(), SemanticText::LastUser).exact
        };
        assert_ne!(other("key:b", None), b.exact, "tenant");
        assert_ne!(other("key:a", Some("n")), b.exact, "namespace");
        let guarded = Tenant { scope: "key:a", namespace: None, guards: Some("[pii-out]") };
        assert_ne!(fingerprint("m", &guarded, &base(), SemanticText::LastUser).exact, b.exact, "output guardrails");
        assert_ne!(
            fingerprint(
                "m2",
                &Tenant { scope: "key:a", namespace: None, guards: None },
                &base(),
                SemanticText::LastUser
            )
            .exact,
            b.exact
        );
    }

    #[test]
    fn the_partition_leaves_out_only_the_question() {
        let b = key(&base());
        assert_eq!(b.text, "hi there");
        let mut reworded = base();
        chat(&mut reworded)[1] = ChatTurn::new(Role::User, "hello!");
        let k = key(&reworded);
        assert_ne!(k.exact, b.exact);
        assert_eq!(k.partition, b.partition);
        let mut other_system = base();
        chat(&mut other_system)[0] = ChatTurn::new(Role::System, "be long");
        assert_ne!(key(&other_system).partition, b.partition);
        let mut ends_with_assistant = base();
        chat(&mut ends_with_assistant).push(ChatTurn::new(Role::Assistant, "Sure"));
        assert_eq!(key(&ends_with_assistant).partition, None);
    }
}
