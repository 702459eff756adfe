//! HTTPS upstreams over real sockets: the mock provider serves TLS with a
//! certificate from a private CA made here with `openssl`; a backend that
//! trusts the CA (`ca_file`) is served, streamed and not; one that does not
//! fails with a 503 that names the certificate problem.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{http, mock_provider, switchyard, tiny_model};
use serde_json::json;
use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("running openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// ca.pem, and leaf.pem / leaf.key for 127.0.0.1 signed by it.
fn private_ca(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=switchyard test CA"]);
    openssl(dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend(["-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost"]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstreams_are_verified_against_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    private_ca(d);
    let (cert, key) = (d.join("leaf.pem"), d.join("leaf.key"));
    let mock = mock_provider(d, &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    let url = format!("https://127.0.0.1:{}/v1", mock.port);
    let config = format!(
        "[[backends]]\nname = \"secure\"\nkind = \"openai\"\nbase_url = \"{url}\"\nca_file = \"{}\"\n\
         [[backends.models]]\nname = \"secure-model\"\nupstream = \"m\"\n\
         [[backends]]\nname = \"untrusted\"\nkind = \"openai\"\nbase_url = \"{url}\"\n\
         [[backends.models]]\nname = \"untrusted-model\"\nupstream = \"m\"\n",
        d.join("ca.pem").display()
    );
    let gateway = switchyard(d, &tiny_model(d), &config, &[]);
    let chat = |model: &str, stream: bool| {
        json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": stream})
            .to_string()
    };
    let r = http(gateway.port, "POST", "/v1/chat/completions", &[], Some(&chat("secure-model", false))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["choices"][0]["message"]["content"], "mock word1 word2");
    let r = http(gateway.port, "POST", "/v1/chat/completions", &[], Some(&chat("secure-model", true))).await;
    assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"), "{}", r.body);
    assert!(r.body.contains("word2"), "{}", r.body);

    let r = http(gateway.port, "POST", "/v1/chat/completions", &[], Some(&chat("untrusted-model", false))).await;
    assert_eq!(r.status, 503, "{}", r.body);
    let message = r.json()["error"]["message"].as_str().unwrap().to_lowercase();
    assert!(message.contains("untrusted") && message.contains("certificate"), "{message}");
}
