//! An SMTP sink for the integration tests: a real (if small) SMTP server on loopback that the
//! app's SMTP client delivers to in plaintext. It records every accepted message and can be told
//! to require AUTH, to refuse recipients, or to fail deliveries.
//!
//! Supported (RFC 5321 subset): EHLO/HELO, AUTH PLAIN (with or without an initial response),
//! AUTH LOGIN, MAIL FROM, RCPT TO, DATA, RSET, NOOP, QUIT; any number of messages per session.
//! PIPELINING, STARTTLS, CHUNKING and SIZE are not advertised.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mailparse::{MailHeaderMap, ParsedMail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

/// A message the sink accepted.
#[derive(Debug, Clone)]
pub struct Received {
    /// The reverse path of `MAIL FROM` (empty for the null sender `<>`).
    pub mail_from: String,
    /// The accepted recipients, in order.
    pub rcpt_to: Vec<String>,
    /// The raw message: dot-unstuffed, lines ending in CRLF (bare LF is normalised to CRLF).
    pub data: String,
    /// The user the session authenticated as, if it did.
    pub auth_user: Option<String>,
}

impl Received {
    fn parsed(&self) -> Option<ParsedMail<'_>> {
        mailparse::parse_mail(self.data.as_bytes()).ok()
    }

    /// Header value (first occurrence, case-insensitive name, unfolded, RFC 2047 encoded-words
    /// decoded).
    pub fn header(&self, name: &str) -> Option<String> {
        self.parsed()?.headers.get_first_value(name)
    }

    /// The decoded first `text/plain` part that is not an attachment (the whole body of a
    /// message without a Content-Type).
    pub fn text_body(&self) -> Option<String> {
        self.body_of("text/plain")
    }

    /// The decoded first `text/html` part that is not an attachment.
    pub fn html_body(&self) -> Option<String> {
        self.body_of("text/html")
    }

    fn body_of(&self, mimetype: &str) -> Option<String> {
        let parsed = self.parsed()?;
        parsed
            .parts()
            .filter(|part| part.subparts.is_empty())
            .filter(|part| part.ctype.mimetype.eq_ignore_ascii_case(mimetype))
            .find(|part| {
                part.get_content_disposition().disposition != mailparse::DispositionType::Attachment
            })
            .and_then(|part| part.get_body().ok())
    }
}

/// What the sink answers to a RCPT TO for a given address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// `250 2.1.5 Ok`
    Accept,
    /// `550 5.1.1 mailbox unavailable`
    Permanent,
    /// `451 4.3.0 try again later`
    Transient,
}

type Policy = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

#[derive(Default)]
struct State {
    messages: Vec<Received>,
    credentials: Option<(String, String)>,
    policy: Option<Policy>,
    fail_next: usize,
}

struct Inner {
    state: Mutex<State>,
    arrived: Notify,
    connections: AtomicUsize,
    queue_ids: AtomicU64,
    id_seed: RandomState,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("smtp sink state lock poisoned")
    }

    fn queue_id(&self) -> String {
        let n = self.queue_ids.fetch_add(1, Ordering::Relaxed);
        let mut hasher = self.id_seed.build_hasher();
        hasher.write_u64(n);
        format!("{:016X}", hasher.finish())
    }
}

/// Aborts the accept task (and with it every session task) when the last handle goes.
struct AcceptTask(JoinHandle<()>);

impl Drop for AcceptTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A running SMTP sink on 127.0.0.1. Cloning is cheap; when the last clone is dropped the sink
/// stops accepting and its open sessions are closed.
#[derive(Clone)]
pub struct SmtpSink {
    inner: Arc<Inner>,
    addr: SocketAddr,
    _task: Arc<AcceptTask>,
}

impl std::fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSink")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl SmtpSink {
    /// Binds 127.0.0.1:0 and starts accepting sessions.
    pub async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the SMTP sink on 127.0.0.1:0");
        let addr = listener.local_addr().expect("SMTP sink local address");
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            arrived: Notify::new(),
            connections: AtomicUsize::new(0),
            queue_ids: AtomicU64::new(0),
            id_seed: RandomState::new(),
        });
        let task = tokio::spawn(accept_loop(listener, inner.clone()));
        SmtpSink {
            inner,
            addr,
            _task: Arc::new(AcceptTask(task)),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Requires AUTH with these credentials: MAIL FROM without a successful AUTH gets
    /// `530 5.7.0`, wrong credentials get `535 5.7.8`. (Without this, any credentials are
    /// accepted.)
    pub fn require_auth(&self, user: &str, password: &str) {
        self.inner.state().credentials = Some((user.to_owned(), password.to_owned()));
    }

    /// Decides per recipient address (called for each RCPT TO). The default accepts everyone.
    pub fn set_recipient_policy(&self, policy: impl Fn(&str) -> Reply + Send + Sync + 'static) {
        self.inner.state().policy = Some(Arc::new(policy));
    }

    /// The next `n` DATA commands are answered `451` after the data (the message is not
    /// recorded).
    pub fn fail_next_deliveries(&self, n: usize) {
        self.inner.state().fail_next = n;
    }

    /// The messages accepted so far, in arrival order.
    pub fn messages(&self) -> Vec<Received> {
        self.inner.state().messages.clone()
    }

    /// Waits until at least `n` messages arrived and returns them all; panics when `timeout`
    /// passes first.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.arrived.notified();
            tokio::pin!(notified);
            // Register before checking, so an arrival between the check and the await is seen.
            notified.as_mut().enable();
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let messages = self.messages();
                if messages.len() >= n {
                    return messages;
                }
                panic!(
                    "SmtpSink::wait_for: expected at least {n} message(s) within {timeout:?}, \
                     but {} arrived (envelopes: {:?})",
                    messages.len(),
                    messages
                        .iter()
                        .map(|m| (&m.mail_from, &m.rcpt_to))
                        .collect::<Vec<_>>()
                );
            }
        }
    }

    /// How many sessions were accepted so far (for connection-pool assertions).
    pub fn connections(&self) -> usize {
        self.inner.connections.load(Ordering::SeqCst)
    }
}

async fn accept_loop(listener: TcpListener, inner: Arc<Inner>) {
    // Session tasks live in the set, so aborting this task closes them too.
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    inner.connections.fetch_add(1, Ordering::SeqCst);
                    let inner = inner.clone();
                    sessions.spawn(async move {
                        // A client hanging up mid-session is not an error for the sink.
                        let _ = session(stream, inner).await;
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
}

/// Per-session state.
#[derive(Default)]
struct Session {
    auth_user: Option<String>,
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
}

impl Session {
    fn reset(&mut self) {
        self.mail_from = None;
        self.rcpt_to.clear();
    }
}

struct Conn {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Conn {
    /// One line without its CRLF (or bare LF); `None` when the client hung up.
    async fn line(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let mut buf = Vec::new();
        let n = self.reader.read_until(b'\n', &mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        Ok(Some(buf))
    }

    async fn reply(&mut self, text: &str) -> std::io::Result<()> {
        // One write per reply: two small writes would wait out delayed ACKs (Nagle).
        let mut buf = Vec::with_capacity(text.len() + 2);
        buf.extend_from_slice(text.as_bytes());
        buf.extend_from_slice(b"\r\n");
        self.writer.write_all(&buf).await?;
        self.writer.flush().await
    }
}

async fn session(stream: TcpStream, inner: Arc<Inner>) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let (read, writer) = stream.into_split();
    let mut conn = Conn {
        reader: BufReader::new(read),
        writer,
    };
    let mut session = Session::default();
    conn.reply("220 sink ESMTP").await?;
    while let Some(line) = conn.line().await? {
        let line = String::from_utf8_lossy(&line).into_owned();
        let (verb, rest) = match line.split_once(' ') {
            Some((verb, rest)) => (verb, rest.trim()),
            None => (line.as_str(), ""),
        };
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                session.reset();
                conn.reply(
                    "250-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n\
                     250 AUTH PLAIN LOGIN",
                )
                .await?;
            }
            "HELO" => {
                session.reset();
                conn.reply("250 sink").await?;
            }
            "AUTH" => auth(&mut conn, &inner, &mut session, rest).await?,
            "MAIL" => {
                let reply = mail(&inner, &mut session, rest);
                conn.reply(reply).await?;
            }
            "RCPT" => {
                let reply = rcpt(&inner, &mut session, rest);
                conn.reply(reply).await?;
            }
            "DATA" => data(&mut conn, &inner, &mut session).await?,
            "RSET" => {
                session.reset();
                conn.reply("250 2.0.0 Ok").await?;
            }
            "NOOP" => conn.reply("250 2.0.0 Ok").await?,
            "QUIT" => {
                conn.reply("221 2.0.0 Bye").await?;
                let _ = conn.writer.shutdown().await;
                return Ok(());
            }
            _ => conn.reply("502 5.5.2 Command not implemented").await?,
        }
    }
    Ok(())
}

/// The address inside `<...>` after `prefix` (`FROM:` / `TO:`), ignoring ESMTP parameters.
fn path_arg(rest: &str, prefix: &str) -> Option<String> {
    let head = rest.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = rest[prefix.len()..].trim_start();
    if let Some(inner) = rest.strip_prefix('<') {
        let end = inner.find('>')?;
        Some(inner[..end].to_owned())
    } else {
        // Lenient: a bare address up to the first space.
        let address = rest.split_whitespace().next()?;
        Some(address.to_owned())
    }
}

fn mail(inner: &Inner, session: &mut Session, rest: &str) -> &'static str {
    if session.mail_from.is_some() {
        return "503 5.5.1 Error: nested MAIL command";
    }
    let Some(from) = path_arg(rest, "FROM:") else {
        return "501 5.5.4 Syntax: MAIL FROM:<address>";
    };
    let auth_required = inner.state().credentials.is_some();
    if auth_required && session.auth_user.is_none() {
        return "530 5.7.0 Authentication required";
    }
    session.mail_from = Some(from);
    "250 2.1.0 Ok"
}

fn rcpt(inner: &Inner, session: &mut Session, rest: &str) -> &'static str {
    if session.mail_from.is_none() {
        return "503 5.5.1 Error: need MAIL command";
    }
    let Some(to) = path_arg(rest, "TO:") else {
        return "501 5.5.4 Syntax: RCPT TO:<address>";
    };
    let policy = inner.state().policy.clone();
    // The policy runs outside the lock: it may panic (a test assertion) or take its time.
    let decision = policy.map_or(Reply::Accept, |policy| policy(&to));
    match decision {
        Reply::Accept => {
            session.rcpt_to.push(to);
            "250 2.1.5 Ok"
        }
        Reply::Permanent => "550 5.1.1 mailbox unavailable",
        Reply::Transient => "451 4.3.0 try again later",
    }
}

async fn data(conn: &mut Conn, inner: &Inner, session: &mut Session) -> std::io::Result<()> {
    let Some(mail_from) = session.mail_from.clone() else {
        return conn.reply("503 5.5.1 Error: need MAIL command").await;
    };
    if session.rcpt_to.is_empty() {
        return conn.reply("554 5.5.1 Error: no valid recipients").await;
    }
    conn.reply("354 End data with <CR><LF>.<CR><LF>").await?;
    let mut data = Vec::new();
    loop {
        let Some(line) = conn.line().await? else {
            // Hung up mid-message: nothing is recorded.
            return Ok(());
        };
        if line == b"." {
            break;
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        data.extend_from_slice(line);
        data.extend_from_slice(b"\r\n");
    }
    let rcpt_to = std::mem::take(&mut session.rcpt_to);
    session.reset();
    let recorded = {
        let mut state = inner.state();
        if state.fail_next > 0 {
            state.fail_next -= 1;
            false
        } else {
            state.messages.push(Received {
                mail_from,
                rcpt_to,
                data: String::from_utf8_lossy(&data).into_owned(),
                auth_user: session.auth_user.clone(),
            });
            true
        }
    };
    if recorded {
        inner.arrived.notify_waiters();
        let reply = format!("250 2.0.0 Ok: queued as {}", inner.queue_id());
        conn.reply(&reply).await
    } else {
        conn.reply("451 4.3.0 try again later").await
    }
}

async fn auth(
    conn: &mut Conn,
    inner: &Inner,
    session: &mut Session,
    rest: &str,
) -> std::io::Result<()> {
    if session.auth_user.is_some() {
        return conn.reply("503 5.5.1 Error: already authenticated").await;
    }
    if session.mail_from.is_some() {
        return conn
            .reply("503 5.5.1 Error: AUTH not permitted during a mail transaction")
            .await;
    }
    let (mechanism, initial) = match rest.split_once(' ') {
        Some((mechanism, initial)) => (mechanism, Some(initial.trim().to_owned())),
        None => (rest, None),
    };
    let (user, password) = match mechanism.to_ascii_uppercase().as_str() {
        "PLAIN" => {
            let response = match initial {
                // `=` is an empty initial response (RFC 4954).
                Some(initial) if initial != "=" => initial,
                _ => {
                    conn.reply("334 ").await?;
                    match client_response(conn).await? {
                        Some(response) => response,
                        None => return Ok(()),
                    }
                }
            };
            if response == "*" {
                return conn.reply("501 5.7.0 Authentication cancelled").await;
            }
            let Some(decoded) = base64_decode(&response) else {
                return conn.reply("501 5.5.2 Cannot decode response").await;
            };
            // authzid NUL authcid NUL passwd
            let mut fields = decoded.split(|&b| b == 0);
            let (Some(_authzid), Some(user), Some(password), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return conn.reply("501 5.5.2 Malformed PLAIN response").await;
            };
            (
                String::from_utf8_lossy(user).into_owned(),
                String::from_utf8_lossy(password).into_owned(),
            )
        }
        "LOGIN" => {
            let user = match initial {
                Some(initial) => initial,
                None => {
                    conn.reply("334 VXNlcm5hbWU6").await?;
                    match client_response(conn).await? {
                        Some(response) => response,
                        None => return Ok(()),
                    }
                }
            };
            if user == "*" {
                return conn.reply("501 5.7.0 Authentication cancelled").await;
            }
            conn.reply("334 UGFzc3dvcmQ6").await?;
            let Some(password) = client_response(conn).await? else {
                return Ok(());
            };
            if password == "*" {
                return conn.reply("501 5.7.0 Authentication cancelled").await;
            }
            let (Some(user), Some(password)) = (base64_decode(&user), base64_decode(&password))
            else {
                return conn.reply("501 5.5.2 Cannot decode response").await;
            };
            (
                String::from_utf8_lossy(&user).into_owned(),
                String::from_utf8_lossy(&password).into_owned(),
            )
        }
        _ => {
            return conn
                .reply("504 5.5.4 Unrecognized authentication type")
                .await;
        }
    };
    let expected = inner.state().credentials.clone();
    let accepted = match expected {
        Some((expected_user, expected_password)) => {
            user == expected_user && password == expected_password
        }
        None => true,
    };
    if accepted {
        session.auth_user = Some(user);
        conn.reply("235 2.7.0 Authentication successful").await
    } else {
        conn.reply("535 5.7.8 Authentication credentials invalid")
            .await
    }
}

/// The client's next line of an AUTH exchange; `None` when it hung up.
async fn client_response(conn: &mut Conn) -> std::io::Result<Option<String>> {
    Ok(conn
        .line()
        .await?
        .map(|line| String::from_utf8_lossy(&line).trim().to_owned()))
}

/// Standard base64 (padding optional); `None` on any other character.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        acc = (acc << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A raw SMTP client for driving the sink.
    struct Client {
        reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
        writer: tokio::net::tcp::OwnedWriteHalf,
    }

    impl Client {
        async fn connect(sink: &SmtpSink) -> Client {
            let stream = TcpStream::connect(sink.addr()).await.expect("connect");
            let (read, writer) = stream.into_split();
            let mut client = Client {
                reader: BufReader::new(read),
                writer,
            };
            let greeting = client.read_reply().await;
            assert!(greeting.starts_with("220 "), "{greeting}");
            client
        }

        /// A whole (possibly multiline) reply, lines joined with `\n`.
        async fn read_reply(&mut self) -> String {
            let mut lines = Vec::new();
            loop {
                let mut line = String::new();
                let n =
                    tokio::time::timeout(Duration::from_secs(5), self.reader.read_line(&mut line))
                        .await
                        .expect("reply in time")
                        .expect("read");
                assert!(n > 0, "server closed the connection");
                let line = line.trim_end_matches(['\r', '\n']).to_owned();
                let last = line.as_bytes().get(3) != Some(&b'-');
                lines.push(line);
                if last {
                    return lines.join("\n");
                }
            }
        }

        async fn send_raw(&mut self, raw: &str) {
            self.writer.write_all(raw.as_bytes()).await.expect("write");
        }

        async fn cmd(&mut self, line: &str) -> String {
            self.send_raw(&format!("{line}\r\n")).await;
            self.read_reply().await
        }

        /// EHLO, asserting success.
        async fn ehlo(&mut self) -> String {
            let reply = self.cmd("EHLO client.test").await;
            assert!(reply.starts_with("250-sink"), "{reply}");
            reply
        }
    }

    fn code(reply: &str) -> &str {
        &reply[..3]
    }

    #[tokio::test]
    async fn full_session_with_dot_stuffing_and_two_messages() {
        let sink = SmtpSink::start().await;
        let mut c = Client::connect(&sink).await;
        let ehlo = c.ehlo().await;
        assert!(ehlo.contains("250-8BITMIME"), "{ehlo}");
        assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
        assert!(!ehlo.contains("PIPELINING"), "{ehlo}");

        assert_eq!(
            code(
                &c.cmd("MAIL FROM:<from@example.com> SIZE=123 BODY=8BITMIME")
                    .await
            ),
            "250"
        );
        assert_eq!(code(&c.cmd("RCPT TO:<a@example.com>").await), "250");
        assert_eq!(code(&c.cmd("rcpt to: <b@example.com>").await), "250");
        assert_eq!(code(&c.cmd("DATA").await), "354");
        c.send_raw("Subject: one\r\n\r\nline one\r\n..leading dot\r\n.\r\n")
            .await;
        let queued = c.read_reply().await;
        assert!(queued.starts_with("250 2.0.0 Ok: queued as "), "{queued}");

        // Straight to the next message (no RSET), with a bare-LF line for leniency.
        assert_eq!(code(&c.cmd("MAIL FROM:<>").await), "250");
        assert_eq!(code(&c.cmd("RCPT TO:<c@example.com>").await), "250");
        assert_eq!(code(&c.cmd("DATA").await), "354");
        c.send_raw("Subject: two\n\n.\r\n").await;
        assert_eq!(code(&c.read_reply().await), "250");

        // RSET, NOOP, unknown, DATA without recipients.
        assert_eq!(code(&c.cmd("RSET").await), "250");
        assert_eq!(code(&c.cmd("NOOP").await), "250");
        assert_eq!(code(&c.cmd("VRFY someone").await), "502");
        assert_eq!(code(&c.cmd("MAIL FROM:<x@example.com>").await), "250");
        assert_eq!(code(&c.cmd("MAIL FROM:<x@example.com>").await), "503");
        assert_eq!(code(&c.cmd("DATA").await), "554");
        assert_eq!(code(&c.cmd("QUIT").await), "221");

        let messages = sink.wait_for(2, Duration::from_secs(5)).await;
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].mail_from, "from@example.com");
        assert_eq!(messages[0].rcpt_to, ["a@example.com", "b@example.com"]);
        assert_eq!(
            messages[0].data,
            "Subject: one\r\n\r\nline one\r\n.leading dot\r\n"
        );
        assert_eq!(messages[0].auth_user, None);
        assert_eq!(messages[0].header("subject").as_deref(), Some("one"));
        assert_eq!(messages[1].mail_from, "");
        assert_eq!(messages[1].rcpt_to, ["c@example.com"]);
        assert_eq!(messages[1].data, "Subject: two\r\n\r\n");
        assert_eq!(sink.connections(), 1);

        // A client vanishing mid-DATA does not disturb the sink.
        let mut c = Client::connect(&sink).await;
        c.ehlo().await;
        c.cmd("MAIL FROM:<a@example.com>").await;
        c.cmd("RCPT TO:<b@example.com>").await;
        c.cmd("DATA").await;
        c.send_raw("Subject: cut off\r\n").await;
        drop(c);
        let mut c = Client::connect(&sink).await;
        assert_eq!(code(&c.cmd("NOOP").await), "250");
        assert_eq!(sink.connections(), 3);
        assert_eq!(sink.messages().len(), 2);
    }

    #[tokio::test]
    async fn auth_plain_and_login() {
        let sink = SmtpSink::start().await;
        sink.require_auth("mailer", "s3cret");
        let mut c = Client::connect(&sink).await;
        c.ehlo().await;
        // Without AUTH.
        assert_eq!(
            c.cmd("MAIL FROM:<a@example.com>").await,
            "530 5.7.0 Authentication required"
        );
        // "\0mailer\0wrong"
        assert_eq!(
            c.cmd("AUTH PLAIN AG1haWxlcgB3cm9uZw==").await,
            "535 5.7.8 Authentication credentials invalid"
        );
        assert_eq!(code(&c.cmd("AUTH PLAIN !!!").await), "501");
        // "\0mailer\0s3cret", on the line after `334 `.
        assert_eq!(c.cmd("AUTH PLAIN").await, "334 ");
        assert_eq!(
            c.cmd("AG1haWxlcgBzM2NyZXQ=").await,
            "235 2.7.0 Authentication successful"
        );
        assert_eq!(code(&c.cmd("MAIL FROM:<a@example.com>").await), "250");
        assert_eq!(code(&c.cmd("RCPT TO:<b@example.com>").await), "250");
        assert_eq!(code(&c.cmd("DATA").await), "354");
        assert_eq!(code(&c.cmd("Subject: hi\r\n\r\nbody\r\n.").await), "250");

        // Initial response form, on a new connection.
        let mut c = Client::connect(&sink).await;
        c.ehlo().await;
        assert_eq!(code(&c.cmd("AUTH PLAIN AG1haWxlcgBzM2NyZXQ=").await), "235");

        // LOGIN: "mailer" / "s3cret", then a wrong password.
        let mut c = Client::connect(&sink).await;
        c.ehlo().await;
        assert_eq!(c.cmd("AUTH LOGIN").await, "334 VXNlcm5hbWU6");
        assert_eq!(c.cmd("bWFpbGVy").await, "334 UGFzc3dvcmQ6");
        assert_eq!(code(&c.cmd("d3Jvbmc=").await), "535");
        assert_eq!(c.cmd("AUTH LOGIN").await, "334 VXNlcm5hbWU6");
        assert_eq!(c.cmd("bWFpbGVy").await, "334 UGFzc3dvcmQ6");
        assert_eq!(code(&c.cmd("czNjcmV0").await), "235");

        let messages = sink.wait_for(1, Duration::from_secs(5)).await;
        assert_eq!(messages[0].auth_user.as_deref(), Some("mailer"));
    }

    #[tokio::test]
    async fn recipient_policy() {
        let sink = SmtpSink::start().await;
        sink.set_recipient_policy(|address| match address {
            "gone@example.com" => Reply::Permanent,
            "busy@example.com" => Reply::Transient,
            _ => Reply::Accept,
        });
        let mut c = Client::connect(&sink).await;
        c.ehlo().await;
        c.cmd("MAIL FROM:<a@example.com>").await;
        assert_eq!(
            c.cmd("RCPT TO:<gone@example.com>").await,
            "550 5.1.1 mailbox unavailable"
        );
        assert_eq!(
            c.cmd("RCPT TO:<busy@example.com>").await,
            "451 4.3.0 try again later"
        );
        assert_eq!(code(&c.cmd("DATA").await), "554");
        assert_eq!(code(&c.cmd("RCPT TO:<ok@example.com>").await), "250");
        assert_eq!(code(&c.cmd("DATA").await), "354");
        assert_eq!(code(&c.cmd("\r\nhello\r\n.").await), "250");
        let messages = sink.wait_for(1, Duration::from_secs(5)).await;
        assert_eq!(messages[0].rcpt_to, ["ok@example.com"]);
    }

    #[tokio::test]
    async fn fail_next_delivery_then_succeed() {
        let sink = SmtpSink::start().await;
        sink.fail_next_deliveries(1);
        let mut c = Client::connect(&sink).await;
        c.ehlo().await;
        for expected in ["451 4.3.0 try again later", "250 2.0.0 Ok: queued as "] {
            c.cmd("MAIL FROM:<a@example.com>").await;
            c.cmd("RCPT TO:<b@example.com>").await;
            assert_eq!(code(&c.cmd("DATA").await), "354");
            let reply = c.cmd("Subject: x\r\n\r\nbody\r\n.").await;
            assert!(reply.starts_with(expected), "{reply}");
        }
        assert_eq!(sink.wait_for(1, Duration::from_secs(5)).await.len(), 1);
        assert_eq!(sink.messages().len(), 1);
    }

    #[tokio::test]
    #[should_panic(expected = "but 0 arrived")]
    async fn wait_for_times_out_with_a_clear_message() {
        let sink = SmtpSink::start().await;
        sink.wait_for(1, Duration::from_millis(50)).await;
    }

    #[tokio::test]
    async fn dropping_the_sink_stops_accepting() {
        let sink = SmtpSink::start().await;
        let addr = sink.addr();
        drop(sink);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[test]
    fn multipart_alternative_quoted_printable() {
        let data = concat!(
            "From: =?UTF-8?Q?Ren=C3=A9e?= <renee@example.com>\r\n",
            "To: someone@example.com\r\n",
            "Subject: =?UTF-8?B?SGVsbG8gd8O2cmxk?=\r\n",
            " and more\r\n",
            "MIME-Version: 1.0\r\n",
            "Content-Type: multipart/alternative; boundary=\"BOUNDARY\"\r\n",
            "\r\n",
            "--BOUNDARY\r\n",
            "Content-Type: text/plain; charset=utf-8\r\n",
            "Content-Transfer-Encoding: quoted-printable\r\n",
            "\r\n",
            "Caf=C3=A9 au lait, a long line that is soft-=\r\n",
            "wrapped.\r\n",
            "--BOUNDARY\r\n",
            "Content-Type: text/html; charset=utf-8\r\n",
            "Content-Transfer-Encoding: base64\r\n",
            "\r\n",
            "PHA+Q2Fmw6k8L3A+\r\n",
            "--BOUNDARY--\r\n",
        );
        let received = Received {
            mail_from: "renee@example.com".to_owned(),
            rcpt_to: vec!["someone@example.com".to_owned()],
            data: data.to_owned(),
            auth_user: None,
        };
        assert_eq!(
            received.header("SUBJECT").as_deref(),
            Some("Hello wörld and more")
        );
        assert_eq!(
            received.header("from").as_deref(),
            Some("Renée <renee@example.com>")
        );
        assert_eq!(received.header("x-missing"), None);
        assert_eq!(
            received.text_body().as_deref(),
            // The CRLF before a boundary belongs to the boundary.
            Some("Café au lait, a long line that is soft-wrapped.")
        );
        assert_eq!(received.html_body().as_deref(), Some("<p>Café</p>"));

        let plain = Received {
            data: "Subject: plain\r\n\r\njust text\r\n".to_owned(),
            ..received
        };
        assert_eq!(plain.text_body().as_deref(), Some("just text\r\n"));
        assert_eq!(plain.html_body(), None);
    }

    #[test]
    fn base64() {
        assert_eq!(
            base64_decode("AG1haWxlcgBzM2NyZXQ=").as_deref(),
            Some(&b"\0mailer\0s3cret"[..])
        );
        assert_eq!(base64_decode("").as_deref(), Some(&b""[..]));
        assert_eq!(base64_decode("a$b"), None);
    }
}
