//! A one-shot HTTP sink on the host: takes one POST, keeps its body and when it arrived, and
//! answers 200. A guest on QEMU user networking reaches it at 10.0.2.2:PORT (the host's
//! loopback), so the network tests and benchmark can see what a guest sent.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What the sink received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The body.
    pub body: Vec<u8>,
    /// From the end of the request's headers to the end of the body.
    pub elapsed: Duration,
}

/// A sink listening on a loopback port.
#[derive(Debug, Clone)]
pub struct Sink {
    /// The port.
    pub port: u16,
    got: Arc<Mutex<Option<std::result::Result<Received, String>>>>,
}

/// Longest body taken.
const MAX_BODY: usize = 64 << 20;

impl Sink {
    /// Listens on 127.0.0.1 (a port the system picks) and takes the first POST in a thread.
    pub fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let got = Arc::new(Mutex::new(None));
        let out = Arc::clone(&got);
        thread::spawn(move || {
            let r = listener
                .accept()
                .map_err(|e| e.to_string())
                .and_then(|(s, _)| take(s));
            if let Ok(mut g) = out.lock() {
                *g = Some(r);
            }
        });
        Ok(Self { port, got })
    }

    /// The POST's body, once it arrived; an error if the exchange failed.
    pub fn received(&self) -> Option<std::result::Result<Received, String>> {
        self.got.lock().ok()?.clone()
    }

    /// [`Self::received`], waiting up to `timeout` for it.
    pub fn wait(&self, timeout: Duration) -> Option<std::result::Result<Received, String>> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(r) = self.received() {
                return Some(r);
            }
            if Instant::now() >= end {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Reads one HTTP/1.x request with a Content-Length body and answers 200.
fn take(stream: std::net::TcpStream) -> std::result::Result<Received, String> {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(300)));
    let mut r = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut len = None;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("connection closed inside the headers".into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                len = v.trim().parse::<usize>().ok();
            }
        }
    }
    let len = len.ok_or("no Content-Length")?;
    if len > MAX_BODY {
        return Err(format!("body of {len} bytes is too large"));
    }
    let start = Instant::now();
    let mut body = vec![0; len];
    r.read_exact(&mut body).map_err(|e| e.to_string())?;
    let elapsed = start.elapsed();
    let mut s = stream;
    let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    Ok(Received { body, elapsed })
}

/// SHA-256 of `data` as lowercase hex, by the system's `sha256sum` (coreutils).
pub fn sha256_hex(data: &[u8]) -> std::result::Result<String, String> {
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("running sha256sum: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("sha256sum stdin")?;
    let data = data.to_vec();
    let writer = thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let _ = writer.join();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next()
        .map(str::to_string)
        .ok_or_else(|| "sha256sum printed nothing".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;

    #[test]
    fn takes_a_post_body_and_answers() {
        let sink = Sink::start().unwrap();
        let mut c = TcpStream::connect(("127.0.0.1", sink.port)).unwrap();
        c.write_all(b"POST / HTTP/1.0\r\nContent-Length: 5\r\nX: y\r\n\r\nhello")
            .unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.0 200"));
        let got = sink.wait(Duration::from_secs(10)).unwrap().unwrap();
        assert_eq!(got.body, b"hello");
    }

    #[test]
    fn sha256_of_a_known_string() {
        assert_eq!(
            sha256_hex(b"abc").unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
