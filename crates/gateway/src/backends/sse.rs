//! Splits a byte stream into server-sent events' `data:` payloads, however
//! the bytes are cut into chunks.

#[derive(Default)]
pub struct SseLines {
    buf: Vec<u8>,
}

impl SseLines {
    /// Feeds bytes; returns the `data:` payloads of the lines they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if let Some(data) = line.strip_prefix("data:") {
                out.push(data.strip_prefix(' ').unwrap_or(data).to_string());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_survive_any_chunking() {
        let stream = b"data: {\"a\":1}\r\n\r\n: comment\nevent: x\ndata:{\"b\":\"\xc3\xa9\"}\n\ndata: [DONE]\n\n";
        for cut in 1..stream.len() {
            let mut lines = SseLines::default();
            let mut got = lines.push(&stream[..cut]);
            got.extend(lines.push(&stream[cut..]));
            assert_eq!(got, ["{\"a\":1}", "{\"b\":\"é\"}", "[DONE]"], "cut at {cut}");
        }
    }
}
