//! Loading, validating and reloading policies, and the barrier suite's verdicts.

use super::*;

#[test]
fn built_in_policies_validate_strictly() {
    let authz = Authz::load(None, Arc::default()).expect("built-in policies are valid");
    assert!(authz.policy_count() > 10);
}

#[test]
fn policy_with_type_error_is_refused_with_a_readable_reason() {
    let bad = vec![(
        "bad.cedar".to_string(),
        r#"permit(principal, action == Warroom::Action::"channel.read", resource) when { principal.levle > 1 };"#
            .to_string(),
    )];
    let err = compile(EMBEDDED_SCHEMA, &bad)
        .err()
        .expect("must be refused");
    assert!(matches!(err, PolicyError::Validation(_)), "{err}");
    assert!(err.to_string().contains("levle"), "{err}");
}

#[test]
fn policy_syntax_error_names_the_file() {
    let bad = vec![(
        "oops.cedar".to_string(),
        "permit(principal, action, resource".to_string(),
    )];
    let err = compile(EMBEDDED_SCHEMA, &bad)
        .err()
        .expect("must be refused");
    assert!(err.to_string().contains("oops.cedar"), "{err}");
}

fn shipped_files() -> Vec<(String, String)> {
    [
        ("chat.cedar", EMBEDDED_POLICIES),
        ("knowledge.cedar", EMBEDDED_KNOWLEDGE_POLICIES),
        ("agents.cedar", EMBEDDED_AGENT_POLICIES),
        ("insights.cedar", EMBEDDED_INSIGHT_POLICIES),
    ]
    .iter()
    .map(|(n, t)| (n.to_string(), t.to_string()))
    .collect()
}

const PERMIT_EVERYTHING: &str = "permit(principal, action, resource);";

#[test]
fn the_shipped_policies_pass_the_barrier_suite() {
    let bundle = compile(EMBEDDED_SCHEMA, &shipped_files()).expect("shipped set is accepted");
    barriers::check(&bundle).expect("and denies every request of the suite");
    assert_eq!(bundle.digest.len(), 64);
    let authz = Authz::load(None, Arc::default()).unwrap();
    assert_eq!(authz.digest(), bundle.digest, "same texts, same hash");
}

#[test]
fn a_blanket_permit_is_refused_naming_what_it_would_allow() {
    let mut files = shipped_files();
    files.push(("zz-open.cedar".into(), PERMIT_EVERYTHING.into()));
    let err = compile(EMBEDDED_SCHEMA, &files)
        .err()
        .expect("valid Cedar, but permissive: must be refused");
    assert!(matches!(err, PolicyError::Permissive(_)), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("must deny"), "{msg}");
    assert!(
        msg.contains("a member who is not in a private channel reads its messages"),
        "{msg}"
    );
    assert!(
        msg.contains("permitted by `permit(principal, action, resource);`"),
        "names the culprit: {msg}"
    );
}

#[test]
fn dropping_a_label_forbid_is_refused() {
    let mut files = shipped_files();
    let chat = &mut files[0].1;
    let start = chat
        .find("@id(\"clearance-covers-channel\")")
        .expect("the shipped chat policies have this forbid");
    let end = start + chat[start..].find("};").expect("the forbid ends") + 2;
    chat.replace_range(start..end, "");
    let err = compile(EMBEDDED_SCHEMA, &files)
        .err()
        .expect("a set without the clearance forbid must be refused");
    let msg = err.to_string();
    assert!(
        msg.contains("a member joins a public channel above their clearance")
            && msg.contains("@id(\"join-public\")"),
        "{msg}"
    );
}

#[test]
fn a_reload_with_a_permissive_set_keeps_the_old_set_active() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("warroom.cedarschema"), EMBEDDED_SCHEMA).unwrap();
    for (name, text) in shipped_files() {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let authz = Authz::load(Some(dir.path()), Arc::default()).unwrap();
    let (count, digest, generation) = (authz.policy_count(), authz.digest(), authz.generation());
    std::fs::write(dir.path().join("zz-open.cedar"), PERMIT_EVERYTHING).unwrap();
    let err = authz.reload().expect_err("refused");
    assert!(matches!(err, PolicyError::Permissive(_)), "{err}");
    assert_eq!(authz.policy_count(), count);
    assert_eq!(authz.digest(), digest, "the last good set stays active");
    assert_eq!(authz.generation(), generation);
    let outsider = Principal {
        id: crate::ids::UserId::from_trusted("u-out"),
        handle: "out".into(),
        display_name: "out".into(),
        role: crate::principal::Role::Member,
        kind: crate::principal::UserKind::Human,
        department: None,
        clearance: "restricted".parse().unwrap(),
        active: true,
    };
    let board = ChannelAttrs {
        id: "c-board".into(),
        visibility: crate::principal::Visibility::Private,
        label: "internal".parse().unwrap(),
        archived: false,
        created_by: "u-in".into(),
    };
    assert!(!authz.channel(
        &outsider,
        ChannelAction::Read,
        &board,
        &ChannelCtx::default()
    ));
    assert!(
        Authz::load(Some(dir.path()), Arc::default()).is_err(),
        "nor does a fresh start accept it"
    );
    std::fs::remove_file(dir.path().join("zz-open.cedar")).unwrap();
    assert_eq!(authz.reload().unwrap(), count);
    assert_eq!(authz.digest(), digest);
}

#[test]
fn reload_keeps_last_good_set_when_new_one_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("warroom.cedarschema"), EMBEDDED_SCHEMA).unwrap();
    std::fs::write(dir.path().join("chat.cedar"), EMBEDDED_POLICIES).unwrap();
    std::fs::write(
        dir.path().join("knowledge.cedar"),
        EMBEDDED_KNOWLEDGE_POLICIES,
    )
    .unwrap();
    let authz = Authz::load(Some(dir.path()), Arc::default()).unwrap();
    let before = authz.policy_count();
    std::fs::write(
        dir.path().join("chat.cedar"),
        "permit(principal, action, resource) when { 1 };",
    )
    .unwrap();
    assert!(authz.reload().is_err());
    assert_eq!(
        authz.policy_count(),
        before,
        "the last good set stays active"
    );
    assert!(
        Authz::load(Some(dir.path()), Arc::default()).is_err(),
        "a fresh start with bad policies refuses to load"
    );
}
