//! The HTML report of `switchyard eval run` (and the comparison of
//! `eval compare`): one self-contained file, no scripts or external
//! assets, pass-rate bars per scorer and per tag, then every case,
//! failures first, with its input, output, expected answer and verdicts.

use std::collections::BTreeMap;
use std::fmt::Write;

/// What the report shows of one case.
pub struct Row<'a> {
    pub id: &'a str,
    pub repeat: u32,
    pub tags: &'a [String],
    pub input: String,
    pub output: &'a str,
    pub expected: Option<&'a str>,
    /// (scorer, pass, score, detail)
    pub verdicts: Vec<(&'a str, bool, f64, Option<&'a str>)>,
}

/// Text for HTML and XML alike: markup characters escaped, control
/// characters (invalid in XML 1.0) dropped but for newlines and tabs.
pub fn escape(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:2em;color:#222}h1{font-size:20px}h2{font-size:16px;margin-top:1.5em}\
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ddd;padding:4px 6px;vertical-align:top;text-align:left}\
.bar{background:#eee;width:300px;height:14px;display:inline-block;vertical-align:middle}.fill{background:#2a7;height:14px}\
.fail{background:#fde8e8}.pass{background:#eefbea}pre{white-space:pre-wrap;margin:0;max-height:12em;overflow:auto}";

fn bars(title: &str, groups: &BTreeMap<String, (usize, usize)>, out: &mut String) {
    let _ = write!(out, "<h2>{}</h2><table>", escape(title));
    for (name, (pass, n)) in groups {
        let pct = 100.0 * *pass as f64 / (*n).max(1) as f64;
        let _ = write!(
            out,
            "<tr><td>{}</td><td><span class=bar><div class=fill style=\"width:{pct:.1}%\"></div></span> {pct:.1}% ({pass}/{n})</td></tr>",
            escape(name)
        );
    }
    out.push_str("</table>");
}

/// The run report.
pub fn run_report(title: &str, rows: &[Row], summary: &str) -> String {
    let mut by_scorer: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut by_tag: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for r in rows {
        for (scorer, pass, _, _) in &r.verdicts {
            let e = by_scorer.entry(scorer.to_string()).or_default();
            e.0 += usize::from(*pass);
            e.1 += 1;
            for t in r.tags {
                let e = by_tag.entry(t.clone()).or_default();
                e.0 += usize::from(*pass);
                e.1 += 1;
            }
        }
    }
    let mut out = format!(
        "<!doctype html><html><head><meta charset=utf-8><title>{0}</title><style>{STYLE}</style></head><body><h1>{0}</h1><pre>{1}</pre>",
        escape(title),
        escape(summary)
    );
    bars("Pass rate per scorer", &by_scorer, &mut out);
    if !by_tag.is_empty() {
        bars("Pass rate per tag", &by_tag, &mut out);
    }
    let mut ordered: Vec<&Row> = rows.iter().collect();
    // Failures first, then by id.
    ordered.sort_by_key(|r| (r.verdicts.iter().all(|v| v.1), r.id, r.repeat));
    out.push_str(
        "<h2>Cases</h2><table><tr><th>case</th><th>input</th><th>output</th><th>expected</th><th>verdicts</th></tr>",
    );
    for r in ordered {
        let ok = r.verdicts.iter().all(|v| v.1);
        let verdicts: String = r
            .verdicts
            .iter()
            .map(|(s, pass, score, detail)| {
                let d = detail.map(|d| format!(": {}", escape(d))).unwrap_or_default();
                format!("{} {} ({score:.2}){d}<br>", if *pass { "✔" } else { "✘" }, escape(s))
            })
            .collect();
        let _ = write!(
            out,
            "<tr class={}><td>{} #{}<br><small>{}</small></td><td><pre>{}</pre></td><td><pre>{}</pre></td><td><pre>{}</pre></td><td>{verdicts}</td></tr>",
            if ok { "pass" } else { "fail" },
            escape(r.id),
            r.repeat,
            escape(&r.tags.join(", ")),
            escape(&r.input),
            escape(r.output),
            escape(r.expected.unwrap_or("")),
        );
    }
    out.push_str("</table></body></html>\n");
    out
}

/// The comparison report: the gate's summary as printed.
pub fn compare_report(title: &str, summary: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=utf-8><title>{0}</title><style>{STYLE}</style></head><body><h1>{0}</h1><pre>{1}</pre></body></html>\n",
        escape(title),
        escape(summary)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_is_self_contained_and_escaped() {
        let tags = vec!["math".to_string()];
        let rows = vec![
            Row {
                id: "a",
                repeat: 0,
                tags: &tags,
                input: "2+2".into(),
                output: "4",
                expected: Some("4"),
                verdicts: vec![("exact", true, 1.0, None)],
            },
            Row {
                id: "b",
                repeat: 0,
                tags: &tags,
                input: "<script>".into(),
                output: "5",
                expected: Some("4"),
                verdicts: vec![("exact", false, 0.0, Some("no"))],
            },
        ];
        let html = run_report("suite", &rows, "1/2");
        assert!(!html.contains("<script>") && html.contains("&lt;script&gt;"));
        assert!(!html.contains("http") && !html.contains("src="), "no external assets");
        assert!(html.contains("width:50.0%") && html.contains("Pass rate per tag"));
        // The failure comes first.
        assert!(html.find("&lt;script&gt;") < html.find("2+2"));
    }
}
