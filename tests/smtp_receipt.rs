//! What a real mail server receives from `herald send`. An independent SMTP
//! server (Python's standard-library `smtpd`, neither herald's code nor the
//! test's) accepts two whole runs: the daily bulletin to 200 clients and a
//! research report that compliance approves. Python's `email` package then
//! parses every received message, so that nothing here depends on herald's
//! own MIME code, and checks its DKIM signature with the test key. Every
//! message must:
//!
//! - parse as MIME without defects: `multipart/alternative` with UTF-8
//!   `text/plain` and `text/html` parts, the Chinese decoding correctly and
//!   the subject encoded per RFC 2047;
//! - carry exactly one `Message-ID`, unique across both runs, and exactly one
//!   `X-Herald-Delivery`, unique too;
//! - follow RFC 8058: `List-Unsubscribe` with an `https://` URL and a
//!   `mailto:`, `List-Unsubscribe-Post: List-Unsubscribe=One-Click`, and a
//!   valid `DKIM-Signature` whose `h=` covers both;
//! - leave nothing unrendered (`{{` or `}}`) in its subject, text or HTML.
//!
//! Each client receives exactly one message per run, and each run's count
//! equals what `herald run show` reports as sent.
//!
//! Without `python3` or its `smtpd` module (removed in Python 3.12) the test
//! says so loudly on stderr and passes.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Instant;

use serde_json::Value;

/// Clients in the book: every one consents to email and gets the bulletin.
const CLIENTS: usize = 200;

/// The independent SMTP server: `python3 -c SERVER INBOX`. It listens on a
/// port the system picks and prints it as its first line. Each message goes
/// to `INBOX/msg-NNNNNN.eml`, its envelope to `…env.json`; the `.eml` is
/// renamed into place last, before the server answers 250, so a message
/// herald counts as sent is complete on disk.
///
/// `smtpd` hands over the DATA with the dot-stuffing undone and lines
/// joined by LF and without the final line break; the server puts the CRLFs
/// back to store the message as it went over the wire.
const SERVER: &str = r##"
import sys, os, json, warnings
warnings.simplefilter("ignore")
import smtpd, asyncore

inbox = sys.argv[1]

class Server(smtpd.SMTPServer):
    count = 0

    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        Server.count += 1
        base = os.path.join(inbox, "msg-%06d" % Server.count)
        with open(base + ".env.json", "w") as f:
            json.dump({"mail_from": mailfrom, "rcpt_to": rcpttos}, f)
        with open(base + ".tmp", "wb") as f:
            f.write(data.replace(b"\n", b"\r\n") + b"\r\n")
        os.rename(base + ".tmp", base + ".eml")
        return None

server = Server(("127.0.0.1", 0), None, decode_data=False)
print(server.socket.getsockname()[1], flush=True)
asyncore.loop(timeout=0.2)
"##;

/// The independent reader: `python3 -c PARSE INBOX KEY.pem` prints one JSON
/// object per received message, parsed with
/// `BytesParser(policy=email.policy.default)`. The DKIM signature is
/// verified here too (RFC 6376, `rsa-sha256` with `relaxed/relaxed`, which
/// is what herald signs with) against the public half of the test key.
const PARSE: &str = r##"
import sys, os, json, re, base64, hashlib, warnings
warnings.simplefilter("ignore")
from email.parser import BytesParser
from email import policy

inbox, pem_path = sys.argv[1], sys.argv[2]

def rsa_public(der):
    # RSAPrivateKey (PKCS#1): SEQUENCE { version, n, e, d, ... }
    def length(i):
        n = der[i]
        i += 1
        if n & 0x80:
            k = n & 0x7f
            n = int.from_bytes(der[i:i + k], "big")
            i += k
        return n, i
    assert der[0] == 0x30
    _, i = length(1)
    ints = []
    while len(ints) < 3:
        assert der[i] == 0x02
        n, i = length(i + 1)
        ints.append(int.from_bytes(der[i:i + n], "big"))
        i += n
    return ints[1], ints[2]

pem = open(pem_path).read()
N, E = rsa_public(base64.b64decode("".join(
    l for l in pem.splitlines() if not l.startswith("-----"))))
KEY_BYTES = (N.bit_length() + 7) // 8
SHA256_INFO = bytes.fromhex("3031300d060960864801650304020105000420")

def fields_and_body(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    fields = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        else:
            fields.append(line)
    return fields, body

def name_of(field):
    return field.split(b":", 1)[0].strip().lower()

def relaxed_header(field):
    name, _, value = field.partition(b":")
    value = re.sub(rb"[ \t]+", b" ", value.replace(b"\r\n", b"")).strip(b" ")
    return name.strip().lower() + b":" + value

def relaxed_body(body):
    lines = [re.sub(rb"[ \t]+", b" ", l).rstrip(b" ") for l in body.split(b"\r\n")]
    while lines and lines[-1] == b"":
        lines.pop()
    return b"".join(l + b"\r\n" for l in lines)

def dkim(raw):
    fields, body = fields_and_body(raw)
    sigs = [f for f in fields if name_of(f) == b"dkim-signature"]
    if len(sigs) != 1:
        return {"error": "%d DKIM-Signature headers" % len(sigs)}
    sig = sigs[0]
    value = re.sub(rb"\s+", b"", sig.split(b":", 1)[1]).decode()
    tags = dict(t.split("=", 1) for t in value.split(";") if t)
    out = {"tags": {k: v for k, v in tags.items() if k != "b"}}
    if tags.get("a") != "rsa-sha256" or tags.get("c") != "relaxed/relaxed":
        out["error"] = "not rsa-sha256 with relaxed/relaxed"
        return out
    bh = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest()).decode()
    out["body_hash_ok"] = bh == tags.get("bh")
    # Each name in h= takes the last instance not yet used, bottom up; a
    # name with no instance left contributes nothing.
    used, data = set(), b""
    for name in tags.get("h", "").lower().split(":"):
        for i in range(len(fields) - 1, -1, -1):
            if i not in used and name_of(fields[i]) == name.encode():
                used.add(i)
                data += relaxed_header(fields[i]) + b"\r\n"
                break
    # The signature header itself, b= emptied, without its line break.
    data += relaxed_header(re.sub(rb"(;[ \t\r\n]*b[ \t\r\n]*=)[^;]*", rb"\1", sig))
    em = pow(int.from_bytes(base64.b64decode(tags["b"]), "big"), E, N).to_bytes(KEY_BYTES, "big")
    digest = hashlib.sha256(data).digest()
    padding = b"\xff" * (KEY_BYTES - 3 - len(SHA256_INFO) - len(digest))
    out["signature_ok"] = em == b"\x00\x01" + padding + b"\x00" + SHA256_INFO + digest
    return out

for name in sorted(os.listdir(inbox)):
    if not name.endswith(".eml"):
        continue
    raw = open(os.path.join(inbox, name), "rb").read()
    envelope = json.load(open(os.path.join(inbox, name[:-4] + ".env.json")))
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    def every(h):
        return [str(v) for v in (msg.get_all(h) or [])]
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    print(json.dumps({
        "file": name,
        "mail_from": envelope["mail_from"],
        "rcpt_to": envelope["rcpt_to"],
        "message_id": every("Message-ID"),
        "from": every("From"),
        "to": every("To"),
        "to_addresses": [a.addr_spec for h in (msg.get_all("To") or []) for a in h.addresses],
        "subject": every("Subject"),
        "subject_raw": [v for k, v in msg.raw_items() if k.lower() == "subject"],
        "list_unsubscribe": every("List-Unsubscribe"),
        "list_unsubscribe_post": every("List-Unsubscribe-Post"),
        "x_herald_delivery": every("X-Herald-Delivery"),
        "dkim": dkim(raw) if msg.get("DKIM-Signature") is not None else None,
        "parts": [{"type": p.get_content_type(), "charset": p.get_content_charset()}
                  for p in msg.walk()],
        "defects": [repr(d) for p in msg.walk() for d in p.defects],
        "text": text.get_content() if text is not None else None,
        "html": html.get_content() if html is not None else None,
    }, ensure_ascii=False))
"##;

/// A throwaway RSA key (PKCS#1 PEM, as `[email.dkim]` wants) made for this
/// test with `openssl genrsa -traditional 1024`. 1024 bits, the smallest
/// RFC 8301 allows, keep the signing of a debug build quick.
const DKIM_KEY: &str = "\
-----BEGIN RSA PRIVATE KEY-----
MIICWwIBAAKBgQDv1qhm6ZCRb3x8dfKBI0335rUzyHmVrgxewDtmOJ7+fDKnf9So
QD2DbCnp0tRKL64KWuDjKs/kfYCjFeBr7D1mNCVHF7RnMOMVeTHMO0veZmJNzlac
ofPnrmrKG2r7Wfw7ijnVu+QF71vMQe6vTzMk4UfuDwWz4qDjaxkrPxndIwIDAQAB
AoGAalgQ1YjszD/Vv84AmBgSY0BNykcy+hZxb7Xm4J1sikSBpVl97piFbfeQ4hfU
f4yCrB69ppx+D79CQY3as5/NXN8wCI5hwwj1BwBMNyMHSO/qzKIk2gdCTqGW3SoF
aN5x2oNReEoVaazGSqmGK85KNYzIuiQHg51a8OwibOLyrYkCQQD7oQ8jkHAmKgPh
hBprG9GEdbSva1ffab8F3ks3j0NE9Wn/prmtJ2ltzYXHbkfDCW9VZKPgf4HuQ+e8
Nt1tjhDnAkEA9AErFD+4eCWu9OaDWVLyGW+sGOgT9lQoE+8qgxsCN3vR7WtR3vSt
nN/0ZEa5hrNn1iIctVmu2+3bCKtFE3j+ZQJADV966X30p+KVwDeAG+8njG2hA62l
xubc0xgEUViYz6JnVsHqnkw46zAACyBOSgxHUXd+yiCcrCgJudQEopzpQwJAdB8e
NkvA6YTdh3Uwa1EbIFnR6CSCY4dXb20xqSUwX+FQXZHma5m8Cd1W/GXgIye8Md8Y
FIIywj2nMK/5drPtNQJAIR0INFW1jH0R7TRby9YZzwDyQbiVNXUymiYR63QH+9EJ
mFB7YXvW98ASST5XeHckfEbgOKV6U30PL9NDqH6A+Q==
-----END RSA PRIVATE KEY-----
";

const DKIM_SELECTOR: &str = "herald";

/// Launches the research report; approves it.
const LAUNCHER: &str = "研究所张伟";
const APPROVER: &str = "合规部王敏";

/// The Python server; killed when dropped, a panicking test included.
struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Says, past the test harness's capture, that the test did not run.
fn skip(why: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED: smtp_receipt: {why}; the received mail was NOT checked ***\n"
    );
}

/// Whether `python3` with `smtpd`, `asyncore` and `email.policy` runs here;
/// why not otherwise.
fn python_missing() -> Option<String> {
    match Command::new("python3")
        .args([
            "-W",
            "ignore",
            "-c",
            "import smtpd, asyncore, email.policy, email.parser",
        ])
        .stdin(Stdio::null())
        .output()
    {
        Err(e) => Some(format!("cannot run python3 ({e})")),
        Ok(o) if !o.status.success() => Some(format!(
            "python3 lacks smtpd/asyncore (removed in Python 3.12): {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .trim()
        )),
        Ok(_) => None,
    }
}

/// Starts the server writing into `inbox`; returns it and its port.
fn start_server(inbox: &Path, log: &Path) -> (Server, u16) {
    let child = Command::new("python3")
        .arg("-c")
        .arg(SERVER)
        .arg(inbox)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("spawn the Python SMTP server");
    let mut server = Server { child };
    let stdout = server.child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let port = line.trim().parse().unwrap_or_else(|_| {
        panic!(
            "the Python SMTP server printed no port ({line:?}): {}",
            std::fs::read_to_string(log).unwrap_or_default()
        )
    });
    (server, port)
}

/// Every message in `inbox`, as Python read it.
fn parse_inbox(inbox: &Path, key: &Path) -> Vec<Value> {
    let o = Command::new("python3")
        .arg("-c")
        .arg(PARSE)
        .arg(inbox)
        .arg(key)
        .stdin(Stdio::null())
        .output()
        .expect("run the Python parser");
    assert!(
        o.status.success(),
        "the Python parser failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stdout = String::from_utf8(o.stdout).expect("UTF-8 from the parser");
    let messages: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    let files = std::fs::read_dir(inbox)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "eml")
        })
        .count();
    assert_eq!(messages.len(), files, "one JSON line per received file");
    messages
}

fn herald(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .current_dir(dir)
        .env_remove("HERALD_DATABASE_URL")
        .stdin(Stdio::null())
        .output()
        .expect("run herald")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = herald(dir, args);
    assert!(
        o.status.success(),
        "herald {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(dir: &Path, args: &[&str]) -> Value {
    let out = ok(dir, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("herald {args:?}: {e}: {out}"))
}

/// Client `i`: their name and address.
fn client(i: usize) -> (String, String) {
    (format!("客户{i}号"), format!("client{i}@example.com"))
}

/// Whether client `i` holds or watches 600519 (the research audience).
fn follows_600519(i: usize) -> bool {
    i.is_multiple_of(5) || i.is_multiple_of(7)
}

/// The working folder: configuration with the DKIM key and the SMTP
/// provider, the shipped templates, rules and campaigns, the bulletin
/// pointed at everyone, and the clients imported.
fn working_folder(dir: &Path, port: u16) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for sub in ["templates", "rules", "campaigns", "seminars"] {
        common::copy_dir(&repo.join(sub), &dir.join(sub));
    }
    std::fs::write(dir.join("dkim.pem"), DKIM_KEY).unwrap();
    std::fs::write(
        dir.join("herald.toml"),
        format!(
            r#"[firm]
name = "某某证券股份有限公司"
short_name = "某某证券"
licence = "某某证券股份有限公司具备中国证监会核准的证券投资咨询业务资格。"

[email]
from = "某某证券 <research@example.com>"
reply_to = "某某证券客户服务 <service@example.com>"
unsubscribe_mailto = "unsubscribe@example.com"

[email.dkim]
selector = "{DKIM_SELECTOR}"
domain = "example.com"
private_key_file = "dkim.pem"

[tracking]
base_url = "https://t.example.com"
secret = "0123456789abcdef0123456789abcdef"

[providers.smtp]
kind = "smtp"
host = "127.0.0.1"
port = {port}
tls = "none"
timeout_secs = 10

[providers.outbox]
kind = "outbox"
dir = "outbox"

[channels]
email = "smtp"
sms = "outbox"

[sending]
approvers = ["{APPROVER}"]
"#
        ),
    )
    .unwrap();
    // The shipped bulletin, to every consenting client and by email only.
    let bulletin = std::fs::read_to_string(repo.join("campaigns/daily_bulletin.toml")).unwrap();
    let bulletin: String = bulletin
        .lines()
        .map(|l| {
            if l.starts_with("audience =") {
                "audience = \"broadcast\""
            } else if l.starts_with("channels =") {
                "channels = [\"email\"]"
            } else {
                l
            }
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(bulletin.contains("audience = \"broadcast\"") && bulletin.contains("[content]"));
    std::fs::write(dir.join("campaigns/bulletin_all.toml"), bulletin).unwrap();

    let mut csv = String::from(
        "id,name,email,phone,risk_level,risk_assessed_on,consent_email,consent_sms,holdings,watchlist\n",
    );
    for i in 1..=CLIENTS {
        let (name, email) = client(i);
        let holds = if i % 5 == 0 { "600519" } else { "" };
        let watches = if i % 7 == 0 { "600519" } else { "" };
        csv.push_str(&format!(
            "K{i:04},{name},{email},138{i:08},C4,2026-06-01,true,true,{holds},{watches}\n"
        ));
    }
    std::fs::write(dir.join("clients.csv"), csv).unwrap();
    let imported = ok(dir, &["import", "clients", "clients.csv"]);
    assert!(
        imported.contains(&format!("{CLIENTS} imported")),
        "{imported}"
    );
}

/// The run's delivery counts per state, as `herald run show` reports them.
fn run_show(dir: &Path, run: &Value) -> Value {
    let id = run["id"].to_string();
    let show = json(dir, &["run", "show", &id, "--json"]);
    assert_eq!(show["run"]["state"], "done", "run {id}: {show:#}");
    show["counts"].clone()
}

/// Moves what the server received so far aside: the next run arrives in
/// an empty inbox.
fn take_inbox(inbox: &Path, to: &Path) -> PathBuf {
    std::fs::rename(inbox, to).unwrap();
    std::fs::create_dir(inbox).unwrap();
    to.to_path_buf()
}

/// What one run's messages must have in common.
struct Expect<'a> {
    label: &'a str,
    /// Recipient address → the client's name.
    recipients: BTreeMap<String, String>,
    /// What `herald run show` counts as sent.
    sent: i64,
    /// Text from the campaign's content that the decoded subject, the text
    /// and the HTML all contain.
    content: &'a str,
}

/// Checks one run's messages; returns their Message-IDs and delivery ids.
fn check_run(messages: &[Value], expect: &Expect) -> (Vec<String>, Vec<String>) {
    let label = expect.label;
    assert_eq!(
        messages.len() as i64,
        expect.sent,
        "{label}: the server received as many messages as herald run show counts sent"
    );
    let mut seen_recipients = BTreeSet::new();
    let mut message_ids = Vec::new();
    let mut deliveries = Vec::new();
    for m in messages {
        let file = m["file"].as_str().unwrap();
        let at = format!("{label} {file}");
        let strs = |key: &str| -> Vec<String> {
            m[key]
                .as_array()
                .unwrap_or_else(|| panic!("{at}: {key} is not a list: {m:#}"))
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect()
        };
        let one = |key: &str| -> String {
            let all = strs(key);
            assert_eq!(all.len(), 1, "{at}: exactly one {key}: {all:?}");
            all.into_iter().next().unwrap()
        };

        // Envelope and addressing: one recipient, one of this run's.
        let rcpt = strs("rcpt_to");
        assert_eq!(rcpt.len(), 1, "{at}: one envelope recipient: {rcpt:?}");
        let rcpt = rcpt[0].to_ascii_lowercase();
        let name = expect
            .recipients
            .get(&rcpt)
            .unwrap_or_else(|| panic!("{at}: {rcpt} is not in this run's audience"));
        assert!(
            seen_recipients.insert(rcpt.clone()),
            "{at}: {rcpt} received this run twice"
        );
        assert_eq!(m["mail_from"], "research@example.com", "{at}");
        assert_eq!(strs("to_addresses"), vec![rcpt.clone()], "{at}: To");
        assert_eq!(one("to"), format!("{name} <{rcpt}>"), "{at}: To decoded");
        assert_eq!(one("from"), "某某证券 <research@example.com>", "{at}");

        // MIME structure, parsed by Python without complaint.
        assert_eq!(m["defects"], serde_json::json!([]), "{at}: MIME defects");
        let parts: Vec<(String, Option<String>)> = m["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["type"].as_str().unwrap().to_owned(),
                    p["charset"].as_str().map(str::to_ascii_lowercase),
                )
            })
            .collect();
        assert_eq!(
            parts,
            vec![
                ("multipart/alternative".to_owned(), None),
                ("text/plain".to_owned(), Some("utf-8".to_owned())),
                ("text/html".to_owned(), Some("utf-8".to_owned())),
            ],
            "{at}: structure"
        );

        // The subject: RFC 2047 on the wire, Chinese once decoded.
        let subject = one("subject");
        let raw_subject = one("subject_raw");
        assert!(
            raw_subject.is_ascii() && raw_subject.to_ascii_lowercase().contains("=?utf-8?"),
            "{at}: the subject is RFC 2047 encoded: {raw_subject}"
        );
        assert!(
            subject.starts_with("【广告】"),
            "{at}: marketing is marked: {subject}"
        );
        assert!(
            subject.contains(expect.content),
            "{at}: the subject has {}: {subject}",
            expect.content
        );
        let text = m["text"]
            .as_str()
            .unwrap_or_else(|| panic!("{at}: no text"));
        let html = m["html"]
            .as_str()
            .unwrap_or_else(|| panic!("{at}: no HTML"));
        for (part, body) in [("text", text), ("HTML", html)] {
            assert!(
                body.contains(name.as_str()),
                "{at}: the {part} greets {name}"
            );
            assert!(
                body.contains(expect.content),
                "{at}: the {part} has {}",
                expect.content
            );
            assert!(
                !body.contains('\u{fffd}'),
                "{at}: the {part} decodes cleanly"
            );
        }
        for (part, s) in [
            ("subject", subject.as_str()),
            ("text", text),
            ("HTML", html),
        ] {
            assert!(
                !s.contains("{{") && !s.contains("}}"),
                "{at}: unrendered template in the {part}: {s}"
            );
        }

        // Identity.
        let id = one("message_id");
        assert!(
            id.starts_with('<') && id.ends_with("@example.com>") && id.len() > 15,
            "{at}: Message-ID {id}"
        );
        message_ids.push(id);
        let delivery = one("x_herald_delivery");
        assert!(
            delivery.trim().parse::<i64>().is_ok(),
            "{at}: X-Herald-Delivery {delivery}"
        );
        deliveries.push(delivery.trim().to_owned());

        // RFC 8058 one-click unsubscribe.
        let lu = one("list_unsubscribe");
        let https = lu
            .split(',')
            .map(str::trim)
            .find_map(|u| u.strip_prefix("<https://")?.strip_suffix('>'))
            .map(|u| format!("https://{u}"))
            .unwrap_or_else(|| panic!("{at}: no https URL in List-Unsubscribe: {lu}"));
        assert!(https.starts_with("https://t.example.com/"), "{at}: {https}");
        assert!(
            lu.contains("<mailto:unsubscribe+") && lu.contains("@example.com>"),
            "{at}: no mailto: in List-Unsubscribe: {lu}"
        );
        assert!(
            text.contains(&https) && html.contains(&https),
            "{at}: the bodies' unsubscribe link is the header's {https}"
        );
        assert_eq!(
            one("list_unsubscribe_post"),
            "List-Unsubscribe=One-Click",
            "{at}"
        );
        let dkim = &m["dkim"];
        assert!(dkim.is_object(), "{at}: no DKIM-Signature");
        assert!(dkim.get("error").is_none(), "{at}: DKIM {dkim}");
        let tags = &dkim["tags"];
        assert_eq!(tags["d"], "example.com", "{at}");
        assert_eq!(tags["s"], DKIM_SELECTOR, "{at}");
        let signed: Vec<String> = tags["h"]
            .as_str()
            .unwrap()
            .split(':')
            .map(|h| h.trim().to_ascii_lowercase())
            .collect();
        for h in [
            "list-unsubscribe",
            "list-unsubscribe-post",
            "from",
            "subject",
        ] {
            assert!(
                signed.iter().any(|s| s == h),
                "{at}: DKIM h= lacks {h}: {signed:?}"
            );
        }
        assert_eq!(
            dkim["body_hash_ok"], true,
            "{at}: DKIM bh= does not match the body"
        );
        assert_eq!(
            dkim["signature_ok"], true,
            "{at}: the DKIM signature does not verify"
        );
    }
    let missing: Vec<_> = expect
        .recipients
        .keys()
        .filter(|r| !seen_recipients.contains(*r))
        .collect();
    assert!(
        missing.is_empty(),
        "{label}: nothing arrived for {missing:?}"
    );
    (message_ids, deliveries)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn an_independent_smtp_server_receives_well_formed_signed_mail() {
    let started = Instant::now();
    if let Some(why) = python_missing() {
        skip(&why);
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let inbox = dir.join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    // Declared after `tmp`, so dropped (killed) before the folder goes.
    let (_server, port) = start_server(&inbox, &dir.join("smtpd.log"));
    working_folder(dir, port);
    let key = dir.join("dkim.pem");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));

    // The bulletin, to everyone.
    let sent = json(dir, &["send", "bulletin_all", "--by", "tester", "--json"]);
    let bulletin_sent = sent["counts"]["deliveries"]["sent"].as_i64().unwrap();
    let counts = run_show(dir, &sent["run"]);
    assert_eq!(
        counts["deliveries"],
        serde_json::json!({ "sent": CLIENTS }),
        "every bulletin delivery is sent: {counts:#}"
    );
    assert_eq!(counts["deliveries"]["sent"], bulletin_sent);
    let bulletin_inbox = take_inbox(&inbox, &dir.join("inbox-bulletin"));

    // The research report: launched, not sent before compliance approves.
    let launched = json(
        dir,
        &["send", "research_600519", "--by", LAUNCHER, "--json"],
    );
    assert_eq!(
        launched["run"]["state"], "awaiting_approval",
        "{launched:#}"
    );
    assert_eq!(
        std::fs::read_dir(&inbox).unwrap().count(),
        0,
        "nothing goes out before approval"
    );
    let run_id = launched["run"]["id"].to_string();
    ok(dir, &["run", "approve", &run_id, "--by", APPROVER]);
    let sent = json(dir, &["send", "research_600519", "--json"]);
    let research_sent = sent["counts"]["deliveries"]["sent"].as_i64().unwrap();
    let counts = run_show(dir, &sent["run"]);
    let followers: BTreeMap<String, String> = (1..=CLIENTS)
        .filter(|&i| follows_600519(i))
        .map(|i| {
            let (name, email) = client(i);
            (email, name)
        })
        .collect();
    assert_eq!(
        counts["deliveries"],
        serde_json::json!({ "sent": followers.len() }),
        "every research delivery is sent: {counts:#}"
    );
    assert_eq!(
        counts["by_channel"],
        serde_json::json!({ "email": followers.len() }),
        "followers with an address get email: {counts:#}"
    );
    assert_eq!(counts["deliveries"]["sent"], research_sent);
    let research_inbox = take_inbox(&inbox, &dir.join("inbox-research"));
    let sending_done = started.elapsed();

    // What the independent parser read.
    let bulletin_content = read_json(&repo.join("campaigns/content/market_bulletin.json"));
    let headline = bulletin_content["headline"].as_str().unwrap();
    let research_content = read_json(&repo.join("campaigns/content/research_report.json"));
    let stock_name = research_content["stock"]["name"].as_str().unwrap();
    let everyone: BTreeMap<String, String> = (1..=CLIENTS)
        .map(|i| {
            let (name, email) = client(i);
            (email, name)
        })
        .collect();
    let (mut ids, mut deliveries) = check_run(
        &parse_inbox(&bulletin_inbox, &key),
        &Expect {
            label: "bulletin",
            recipients: everyone,
            sent: bulletin_sent,
            content: headline,
        },
    );
    let (research_ids, research_deliveries) = check_run(
        &parse_inbox(&research_inbox, &key),
        &Expect {
            label: "research",
            recipients: followers,
            sent: research_sent,
            content: stock_name,
        },
    );
    ids.extend(research_ids);
    deliveries.extend(research_deliveries);

    let total = ids.len();
    assert_eq!(total as i64, bulletin_sent + research_sent);
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(
        unique.len(),
        total,
        "Message-IDs are unique across the runs"
    );
    let unique: HashSet<_> = deliveries.iter().collect();
    assert_eq!(
        unique.len(),
        total,
        "X-Herald-Delivery values are unique across the runs"
    );
    eprintln!(
        "smtp_receipt: {total} messages ({bulletin_sent} bulletin, {research_sent} research) \
         received and checked; sending {:.1} s, total {:.1} s",
        sending_done.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
