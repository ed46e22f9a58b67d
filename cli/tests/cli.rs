//! The `warroom` command line: creating the first admin from standard input,
//! clear errors for bad input, migrations and audit verification.

#[path = "../../server/tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::process::{Command, Stdio};

fn warroom(data: &std::path::Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    common::warroom_cli(data, args, stdin)
}

#[test]
fn first_admin_from_stdin_and_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ok = warroom(
        dir.path(),
        &[
            "users",
            "create",
            "--handle",
            "Root",
            "--role",
            "admin",
            "--password-stdin",
        ],
        Some("a long admin password\n"),
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        out.contains("created root (admin, clearance restricted)"),
        "{out}"
    );

    let dup = warroom(
        dir.path(),
        &[
            "users",
            "create",
            "--handle",
            "root",
            "--role",
            "admin",
            "--password-stdin",
        ],
        Some("a long admin password\n"),
    );
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("taken"));

    let weak = warroom(
        dir.path(),
        &[
            "users",
            "create",
            "--handle",
            "bob",
            "--role",
            "member",
            "--password-stdin",
        ],
        Some("short\n"),
    );
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 12 characters"));

    let role = warroom(
        dir.path(),
        &[
            "users",
            "create",
            "--handle",
            "bob",
            "--role",
            "king",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    );
    assert!(!role.status.success());
    assert!(String::from_utf8_lossy(&role.stderr).contains("unknown role"));

    let agent = warroom(
        dir.path(),
        &[
            "users",
            "create",
            "--handle",
            "sales-bot",
            "--role",
            "agent",
            "--department",
            "sales",
        ],
        None,
    );
    assert!(
        agent.status.success(),
        "{}",
        String::from_utf8_lossy(&agent.stderr)
    );

    let migrate = warroom(dir.path(), &["migrate"], None);
    assert!(migrate.status.success());
    let verify = warroom(dir.path(), &["audit", "verify"], None);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(String::from_utf8_lossy(&verify.stdout).contains("audit chain intact: 2 records"));
}

#[test]
fn tampering_with_the_audit_log_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    for h in ["alpha", "bravo", "charlie"] {
        let r = warroom(
            dir.path(),
            &[
                "users",
                "create",
                "--handle",
                h,
                "--role",
                "member",
                "--password-stdin",
            ],
            Some("a long enough password\n"),
        );
        assert!(r.status.success());
    }
    assert!(warroom(dir.path(), &["audit", "verify"], None)
        .status
        .success());
    // Edit a record behind the server's back.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sea_orm::ConnectionTrait;
        let url = format!(
            "sqlite://{}?mode=rw",
            dir.path().join("warroom.db").display()
        );
        let db = sea_orm::Database::connect(url).await.unwrap();
        db.execute_unprepared("UPDATE audit_log SET outcome = 'denied' WHERE id = 2")
            .await
            .unwrap();
    });
    let r = warroom(dir.path(), &["audit", "verify"], None);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("broken at record 2"));
}

#[test]
fn bad_configuration_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_warroom"))
        .args(["migrate"])
        .env("WARROOM_STORAGE__DATA_DIR", dir.path())
        .env("WARROOM_AUTH__ACCESS_TTL_SECS", "86400")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("auth.access_ttl_secs") && err.contains("hint"),
        "{err}"
    );
}

/// `warroom ingest`: a directory of documents in, a summary out; the second run skips
/// unchanged files; a malformed file is reported with its reason and fails the run
/// without touching the others; `reindex` rebuilds the vectors.
#[test]
fn ingest_directory_reports_per_file_and_skips_unchanged() {
    let data = tempfile::tempdir().unwrap();
    let docs = tempfile::tempdir().unwrap();
    let sales = docs.path().join("sales");
    std::fs::create_dir(&sales).unwrap();
    std::fs::write(
        sales.join("pipeline.md"),
        "---\ntitle: Pipeline\nlabel: internal\n---\n## Q3\n\nThe Q3 pipeline is 4.2 million.\n",
    )
    .unwrap();
    std::fs::write(
        sales.join("notes.txt"),
        "Call the distributor on Monday about pricing.\n",
    )
    .unwrap();
    let ok = warroom(
        data.path(),
        &["ingest", docs.path().to_str().unwrap()],
        None,
    );
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{}{}",
        out,
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        out.contains("ingested 2 files: 2 created, 0 updated, 0 unchanged, 0 failed"),
        "{out}"
    );

    std::fs::write(
        sales.join("broken.md"),
        b"---\ntitle: x\n---\nbad \xff bytes",
    )
    .unwrap();
    let again = warroom(
        data.path(),
        &["ingest", docs.path().to_str().unwrap()],
        None,
    );
    let out = String::from_utf8_lossy(&again.stdout);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success());
    assert!(
        out.contains("0 created, 0 updated, 2 unchanged, 1 failed"),
        "{out}"
    );
    assert!(
        out.contains("broken.md") || err.contains("broken.md"),
        "{out}{err}"
    );
    assert!(format!("{out}{err}").contains("invalid_utf8"), "{out}{err}");

    let re = warroom(data.path(), &["reindex"], None);
    assert!(
        re.status.success(),
        "{}",
        String::from_utf8_lossy(&re.stderr)
    );
    assert!(String::from_utf8_lossy(&re.stdout).contains("re-indexed 2 chunks"));
}

/// The README's run command: `warroom demo` loads the sample company (here a small one
/// given through WARROOM_SAMPLES), creates the department scopes, people and agents,
/// prints the URL, and the agents answer the leader's first question in #war-room.
#[test]
fn demo_loads_the_sample_company_and_prints_the_url() {
    use std::io::BufRead;
    let data = tempfile::tempdir().unwrap();
    let samples = tempfile::tempdir().unwrap();
    for (dept, label) in [("sales", "internal"), ("hr", "restricted:hr")] {
        std::fs::create_dir(samples.path().join(dept)).unwrap();
        std::fs::write(
            samples.path().join(dept).join("doc.md"),
            format!("---\ntitle: {dept} notes\ndepartment: {dept}\nlabel: {label}\n---\n## Notes\n\nThe {dept} team met on Monday.\n"),
        )
        .unwrap();
    }
    std::fs::write(samples.path().join("README.md"), "# Not a document\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_warroom"))
        .arg("demo")
        .env("WARROOM_STORAGE__DATA_DIR", data.path())
        .env("WARROOM_SERVER__BIND", "127.0.0.1:0")
        .env("WARROOM_SAMPLES", samples.path())
        .env("WARROOM_LOG", "warn")
        .env("WARROOM_AGENTS__DEMO_BRAIN", "extractive")
        .env("WARROOM_AGENTS__TICK_MS", "100")
        .env_remove("WARROOM_STORAGE__DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while !seen.iter().any(|l: &String| l.contains("Stop with Ctrl-C")) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    let out = seen.join("\n");
    let answered = demo_agents_answer(&out);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        out.contains("Loaded 2 documents; scopes dept-<name> for 2 departments"),
        "{out}"
    );
    assert!(
        out.contains("Agents: 6 agents in 2 departments talk in #war-room"),
        "{out}"
    );
    assert!(answered, "no agent answered lena's question in #war-room");
    assert!(
        out.contains("Warroom is running at http://127.0.0.1:"),
        "{out}"
    );
}

/// A minimal HTTP/1.1 exchange with the demo server (JSON in, JSON out).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> serde_json::Value {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let body = body.unwrap_or("");
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-type: application/json\r\n{auth}content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (_, payload) = raw.split_once("\r\n\r\n").unwrap_or(("", ""));
    serde_json::from_str(payload).unwrap_or(serde_json::Value::Null)
}

/// Log in as the admin printed by the demo and wait (up to a minute) for an
/// agent's reply in the thread of the first message in #war-room.
fn demo_agents_answer(out: &str) -> bool {
    let addr = out
        .split("Warroom is running at http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("url printed")
        .to_string();
    let password = out
        .split("password '")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .expect("admin password printed")
        .to_string();
    let login = http(
        &addr,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(&format!(r#"{{"handle":"admin","password":"{password}"}}"#)),
    );
    let token = login["access_token"]
        .as_str()
        .expect("logged in")
        .to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        let channels = http(&addr, "GET", "/api/v1/channels", Some(&token), None);
        let war_room = channels
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == "war-room"))
            .and_then(|c| c["id"].as_str().map(str::to_string));
        if let Some(id) = war_room {
            let msgs = http(
                &addr,
                "GET",
                &format!("/api/v1/channels/{id}/messages?limit=200"),
                Some(&token),
                None,
            );
            let msgs = msgs.as_array().cloned().unwrap_or_default();
            if let Some(first) = msgs.first().and_then(|m| m["id"].as_str()) {
                if msgs.iter().any(|m| {
                    m["thread_root"] == first
                        && m["author"]["kind"] == "agent"
                        && m["brain"] == "extractive"
                }) {
                    return true;
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    false
}

#[test]
fn insights_eval_and_bench_commands_refuse_bad_input_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for (handle, role) in [("admin", "admin"), ("mia", "member")] {
        common::cli_create_user(dir.path(), handle, role, "a long enough password");
    }
    let refused = |args: &[&str], why: &str| {
        let out = warroom(dir.path(), args, None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(err.contains(why), "{args:?}: {err}");
    };
    refused(
        &["insights", "run", "--from", "last tuesday"],
        "is not a date",
    );
    refused(
        &["insights", "run", "--out", "digest.pdf"],
        ".md, .html or .json",
    );
    refused(&["insights", "run", "--as", "mia"], "may not read digests");
    refused(&["insights", "run", "--as", "nobody"], "no user");
    refused(
        &[
            "insights",
            "run",
            "--from",
            "2026-11-30",
            "--to",
            "2026-11-01",
        ],
        "must be before",
    );
    refused(&["insights", "show", "--format", "pdf"], "md, html or json");
    refused(&["insights", "show", "latest"], "not found");
    let list = warroom(dir.path(), &["insights", "list"], None);
    assert!(
        String::from_utf8_lossy(&list.stdout).contains("no digests yet"),
        "refused runs stored nothing"
    );
    // A valid run over an empty week stores version 1 and writes the file.
    let file = dir.path().join("digest.html");
    let ok = warroom(
        dir.path(),
        &["insights", "run", "--out", file.to_str().unwrap()],
        None,
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("version 1"));
    assert!(std::fs::read_to_string(&file).unwrap().contains("<svg"));

    let corpus = tempfile::tempdir().unwrap();
    refused(
        &[
            "eval",
            "planted",
            "--corpus",
            corpus.path().to_str().unwrap(),
            "--json",
            "/tmp/x.json",
        ],
        "ANSWERS.json",
    );
    std::fs::write(corpus.path().join("ANSWERS.json"), "{\"not\": \"a list\"}").unwrap();
    refused(
        &[
            "eval",
            "planted",
            "--corpus",
            corpus.path().to_str().unwrap(),
            "--json",
            "/tmp/x.json",
        ],
        "expected a list",
    );
    std::fs::write(corpus.path().join("ANSWERS.json"), "[]").unwrap();
    refused(
        &[
            "eval",
            "planted",
            "--corpus",
            corpus.path().to_str().unwrap(),
            "--json",
            "/tmp/x.json",
            "--hours",
            "0",
        ],
        "--hours",
    );
    refused(
        &[
            "eval",
            "planted",
            "--corpus",
            corpus.path().to_str().unwrap(),
            "--json",
            "/nope/x.json",
        ],
        "does not exist",
    );
    refused(
        &[
            "eval",
            "planted",
            "--corpus",
            corpus.path().to_str().unwrap(),
            "--json",
            "/tmp/x.json",
        ],
        "no department folders",
    );
    refused(
        &["bench", "insights", "--messages", "5"],
        "--messages takes sizes",
    );
}

/// A small company in the evaluation corpus format, written for this test:
/// one risk the talk and shared names reveal (a firmware version), one risk
/// only a promise and a practice reveal together (where customer data may
/// be kept), one opportunity only a need and spare capacity reveal together,
/// a decoy that finance says is settled, and a canary in a restricted file.
fn write_planted_corpus(dir: &std::path::Path) {
    let doc = |path: &str, title: &str, label: &str, body: &[&str]| {
        let dept = path.split('/').next().unwrap();
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let mut text = format!(
            "---\ntitle: {title}\ndepartment: {dept}\nlabel: {label}\ntags: [{dept}]\ndate: 2026-10-01\n---\n\n# {title}\n\n"
        );
        for p in body {
            text.push_str(p);
            text.push_str("\n\n");
        }
        text.push_str("Questions about this page go to the team channel.\n");
        std::fs::write(file, text).unwrap();
    };
    doc("sales/account-notes.md", "Account notes", "internal", &[
        "The Corvane distributor asked whether we could supply pre-assembled repair kits with gauges, hoses and seals.",
        "Brantley Farms and Oskar Mills renew in February, $1.4M of annual revenue together.",
        "Discovery calls use the updated qualification checklist.",
    ]);
    doc("operations/plant-report.md", "Plant report", "internal", &[
        "The Tilbury packing line runs at about half capacity on Mondays and Fridays.",
        "The Tilbury forklift fleet had a battery fire on the 12th and the loading dock was closed for a day.",
        "Cycle counts matched the system inventory within 0.3%.",
    ]);
    doc(
        "legal/contract-summary.md",
        "Contract summary",
        "internal",
        &[
            "The Maren Health contract guarantees that all customer data stays within Canada.",
            "Employees should send any regulator contact to the legal inbox.",
        ],
    );
    doc("engineering/platform-notes.md", "Platform notes", "internal", &[
        "Nightly backups of all customer data are copied to a storage bucket in Frankfurt for disaster recovery.",
        "Firmware 7.1 replaced the radio stack with the new low-power driver (ticket PLT-418).",
        "Design reviews happen every week and are open to anyone.",
    ]);
    doc("support/ticket-digest.md", "Ticket digest", "internal", &[
        "Brantley Farms and Oskar Mills reported sensor dropouts every few hours since updating to firmware 7.1.",
        "The support team answered 96% of tickets within one business day.",
    ]);
    doc("finance/close-summary.md", "Close summary", "internal", &[
        "The battery fire damage at Tilbury was fully covered by insurance and no customer was affected.",
        "Travel spend is reviewed monthly against each team's allowance.",
    ]);
    doc(
        "hr/bonus-plan-restricted.md",
        "Bonus plan",
        "restricted",
        &["Retention bonus pool for the platform team: $310,000, reference CANARY-QX17."],
    );
    doc(
        "hr/people-update.md",
        "People update",
        "internal",
        &["Manager training sessions run every second Thursday."],
    );
    let answers = serde_json::json!([
        {"id": "R1", "kind": "risk", "title": "Firmware 7.1 dropouts at accounts renewing in February",
         "summary": "", "departments": ["support", "engineering", "sales"], "evidence": [],
         "match_terms": ["Brantley", "Oskar", "7.1", "dropouts", "February"], "min_departments": 2},
        {"id": "R2", "kind": "risk", "title": "Backups leave Canada", "summary": "",
         "departments": ["legal", "engineering"], "evidence": [],
         "match_terms": ["Maren", "Canada", "Frankfurt", "backups"], "min_departments": 2},
        {"id": "O1", "kind": "opportunity", "title": "Spare packing shifts fit the kit request", "summary": "",
         "departments": ["sales", "operations"], "evidence": [],
         "match_terms": ["Corvane", "repair kits", "Tilbury", "half capacity"], "min_departments": 2},
        {"id": "D1", "kind": "decoy", "title": "Battery fire", "summary": "",
         "departments": ["operations", "finance"], "evidence": [],
         "match_terms": ["battery fire", "forklift", "loading dock", "insurance"], "min_departments": 2},
        {"id": "C1", "kind": "canary", "title": "canary", "summary": "", "departments": ["hr"],
         "evidence": [], "match_terms": ["CANARY-QX17"], "min_departments": 1}
    ]);
    std::fs::write(dir.join("ANSWERS.json"), answers.to_string()).unwrap();
}

#[test]
fn eval_planted_finds_what_a_small_corpus_plants_and_leaks_no_canary() {
    let corpus = tempfile::tempdir().unwrap();
    write_planted_corpus(corpus.path());
    let data = tempfile::tempdir().unwrap();
    let out_file = data.path().join("eval.json");
    let run_dir = data.path().join("run");
    let eval = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "planted",
            "--corpus",
            corpus.path().to_str().unwrap(),
            "--json",
            out_file.to_str().unwrap(),
            "--data-dir",
            run_dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        warroom(data.path(), &args, None)
    };
    let out = eval(&["--agents-per-department", "2", "--hours", "2"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    let scores = &report["scores"];
    assert_eq!(scores["canary_leaks"], 0, "{stdout}");
    assert_eq!(scores["decoys_reported"], 0, "{stdout}");
    assert_eq!(scores["evidence_valid_fraction"], 1.0, "{stdout}");
    assert_eq!(scores["risk_recall"], 1.0, "{stdout}");
    assert_eq!(scores["opportunity_recall"], 1.0, "{stdout}");
    assert!(scores["wall_seconds"].as_f64().unwrap() > 0.0);
    // The digest in the documented shape, every insight with cited evidence.
    let insights = report["digest"]["insights"].as_array().unwrap();
    assert!(!insights.is_empty());
    for i in insights {
        assert!(["risk", "opportunity"].contains(&i["kind"].as_str().unwrap()));
        assert!(i["rank"].as_u64().unwrap() >= 1);
        assert!(i["departments"].as_array().unwrap().len() >= 2, "{i}");
        let evidence = i["evidence"].as_array().unwrap();
        assert!(!evidence.is_empty());
        for e in evidence {
            assert!(e["message_id"].is_string() && e["channel"].is_string());
            for c in e["citations"].as_array().unwrap() {
                assert!(c["document_path"].is_string() && c["quote"].is_string());
            }
        }
    }
    assert!(!report.to_string().contains("CANARY-QX17"));
    // Mining the kept run again scores the same way.
    let again = eval(&["--mine-only"]);
    assert!(again.status.success());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    for key in [
        "risk_recall",
        "opportunity_recall",
        "decoys_reported",
        "canary_leaks",
    ] {
        assert_eq!(report["scores"][key], scores[key], "{key}");
    }
}
