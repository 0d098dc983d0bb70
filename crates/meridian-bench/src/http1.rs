//! The load driver's HTTP client for the measured GET scenarios: one keep-alive HTTP/1.1
//! connection per worker, the request prepared once as bytes, the answer read up to its
//! `Content-Length` (what `wrk` and `oha` do).
//!
//! The client shares the two cores with the server. A general client (reqwest over hyper's
//! pooled client) spends about as much CPU per request as the server's whole HTTP stack: a pool
//! checkout, a header map and a boxed future per request. That CPU was counted against the app
//! in every app/floor ratio, while the floor, issued straight through the driver, has no client
//! at all. Setup, logins and anything that checks a body's content keep using reqwest.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use crate::load::OpResult;

/// Response headers larger than this are refused (the app's are well under 1 KiB).
const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 32;

/// One prepared GET request and a connection per load worker to send it on.
pub struct Getter {
    addr: SocketAddr,
    request: Vec<u8>,
    connections: Vec<Mutex<Option<Connection>>>,
}

struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Getter {
    /// `base` is `http://host:port`; `authorization` the whole header value, when any.
    pub fn new(
        base: &str,
        path: &str,
        authorization: Option<&str>,
        workers: usize,
    ) -> anyhow::Result<Arc<Self>> {
        let host = base
            .strip_prefix("http://")
            .context("the lean client speaks plain http:// only")?;
        let addr: SocketAddr = host
            .parse()
            .with_context(|| format!("{host} is not an IP address and port"))?;
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
        if let Some(value) = authorization {
            request.push_str(&format!("Authorization: {value}\r\n"));
        }
        request.push_str("\r\n");
        Ok(Arc::new(Self {
            addr,
            request: request.into_bytes(),
            connections: (0..workers).map(|_| Mutex::new(None)).collect(),
        }))
    }

    /// Sends the request on `worker`'s connection (opening it when there is none) and reads the
    /// whole answer; anything but 200 is an error. A failed connection is dropped, so the next
    /// request opens a fresh one.
    pub async fn get(self: Arc<Self>, worker: usize) -> OpResult {
        let slot = self
            .connections
            .get(worker)
            .ok_or_else(|| format!("no connection slot for worker {worker}"))?;
        let mut slot = slot.lock().await;
        let mut connection = match slot.take() {
            Some(connection) => connection,
            None => {
                let stream = TcpStream::connect(self.addr)
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                stream
                    .set_nodelay(true)
                    .map_err(|e| format!("nodelay: {e}"))?;
                Connection {
                    stream,
                    buf: Vec::with_capacity(8 * 1024),
                }
            }
        };
        let (status, body, keep_alive) = connection.exchange(&self.request).await?;
        if keep_alive {
            *slot = Some(connection);
        }
        if status != 200 {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            return Err(format!("{status}: {text}"));
        }
        Ok(())
    }
}

/// What the head of a response says about its body.
#[derive(Debug)]
struct Head {
    status: u16,
    head_len: usize,
    content_length: usize,
    keep_alive: bool,
}

fn parse_head(bytes: &[u8]) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("response head: {e}")),
    };
    let mut content_length = None;
    let mut keep_alive = true;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(header.value).map_err(|e| e.to_string())?;
            content_length = Some(
                text.trim()
                    .parse::<usize>()
                    .map_err(|e| format!("content-length {text:?}: {e}"))?,
            );
        } else if header.name.eq_ignore_ascii_case("connection") {
            keep_alive = !header.value.eq_ignore_ascii_case(b"close");
        }
    }
    Ok(Some(Head {
        status: response.code.ok_or("response without a status")?,
        head_len,
        content_length: content_length
            .ok_or("response without Content-Length (chunked bodies are not read)")?,
        keep_alive,
    }))
}

impl Connection {
    async fn exchange(&mut self, request: &[u8]) -> Result<(u16, Vec<u8>, bool), String> {
        self.stream
            .write_all(request)
            .await
            .map_err(|e| format!("send: {e}"))?;
        self.buf.clear();
        let head = loop {
            if let Some(head) = parse_head(&self.buf)? {
                break head;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(format!("response head over {MAX_HEAD} bytes"));
            }
            self.fill().await?;
        };
        let total = head.head_len + head.content_length;
        while self.buf.len() < total {
            self.fill().await?;
        }
        if self.buf.len() > total {
            return Err("bytes after the response (none were asked for)".to_owned());
        }
        let body = self.buf[head.head_len..].to_vec();
        Ok((head.status, body, head.keep_alive))
    }

    async fn fill(&mut self) -> Result<(), String> {
        let read = self
            .stream
            .read_buf(&mut self.buf)
            .await
            .map_err(|e| format!("receive: {e}"))?;
        if read == 0 {
            return Err("connection closed mid-response".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_head_gives_status_length_and_keep_alive() {
        let bytes =
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 5\r\nConnection: close\r\n\r\nnope!";
        let head = parse_head(bytes)
            .expect("a valid head")
            .expect("a complete head");
        assert_eq!(head.status, 404);
        assert_eq!(head.content_length, 5);
        assert_eq!(&bytes[head.head_len..], b"nope!");
        assert!(!head.keep_alive);
    }

    #[test]
    fn a_partial_head_asks_for_more_and_a_chunked_one_is_refused() {
        assert!(
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-len")
                .expect("a valid start")
                .is_none()
        );
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        assert!(
            parse_head(chunked)
                .expect_err("no length")
                .contains("Content-Length")
        );
    }

    #[tokio::test]
    async fn answers_are_read_whole_on_one_connection_and_errors_reported() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut buf = vec![0u8; 4096];
            for answer in [
                "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
                "HTTP/1.1 401 Unauthorized\r\ncontent-length: 6\r\n\r\ndenied",
            ] {
                let n = socket.read(&mut buf).await.expect("read");
                let request = String::from_utf8_lossy(&buf[..n]).into_owned();
                assert!(request.starts_with("GET /x HTTP/1.1\r\n"), "{request}");
                assert!(request.contains("Authorization: Bearer t\r\n"), "{request}");
                // The body arrives in two writes: the client must wait for the rest.
                let (first, rest) = answer.split_at(answer.len() - 1);
                socket.write_all(first.as_bytes()).await.expect("write");
                socket.flush().await.expect("flush");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                socket.write_all(rest.as_bytes()).await.expect("write");
            }
        });
        let getter =
            Getter::new(&format!("http://{addr}"), "/x", Some("Bearer t"), 1).expect("getter");
        // The server accepts one connection: a second one would wait for an answer forever.
        let within = |f| tokio::time::timeout(std::time::Duration::from_secs(5), f);
        assert_eq!(
            within(Arc::clone(&getter).get(0)).await.expect("in time"),
            Ok(())
        );
        assert_eq!(
            within(Arc::clone(&getter).get(0)).await.expect("in time"),
            Err("401: denied".to_owned())
        );
        assert!(getter.get(1).await.is_err());
    }
}
