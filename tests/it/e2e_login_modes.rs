//! The two non-rotating login modes with the real CLI: a setup token reaches the API as
//! `Authorization: Bearer …` and an API key as `x-api-key`, both delivered as files, in no
//! env var and nowhere in `docker inspect`.

use crate::support::real::{agent_image, StandIn};
use crate::support::{engine, fake_token, rt, Project};

fn config(api: &StandIn, credentials: &str) -> String {
    format!(
        "project: {{project}}\ncredentials:\n{credentials}agents:\n  agent:\n    image: {}\n    replicas: 2\n    user: agent\n{}",
        agent_image(),
        api.agent_yaml()
    )
}

fn assert_not_in_inspect(p: &Project, secret: &str) {
    let engine = engine();
    for (name, id) in p.containers() {
        let json = crate::support::docker_inspect(&id).to_string();
        assert!(
            !json.contains(secret),
            "the secret is in docker inspect of {name}"
        );
        let env = rt().block_on(engine.inspect_container(&id)).unwrap().env;
        assert!(
            !env.iter().any(|e| e.contains(secret)),
            "the secret is in {name}'s env"
        );
    }
}

#[test]
fn a_setup_token_reaches_the_api_as_a_bearer_from_a_file() {
    let api = StandIn::start(&[]);
    let p = Project::new("setup-token-real");
    let token = fake_token("oat");
    p.write_config(&config(&api, "  oauth_token: ${TEST_SETUP_TOKEN}\n"));
    let out = p
        .claunch()
        .env("TEST_SETUP_TOKEN", &token)
        .arg("up")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(!stdout.contains(&token));
    let bearer = format!("Bearer {token}");
    let hits = api
        .messages()
        .iter()
        .filter(|m| m["headers"]["authorization"] == bearer.as_str())
        .count();
    assert_eq!(hits, 2, "both smoke tests used the setup token");
    assert_not_in_inspect(&p, &token);
}

#[test]
fn an_api_key_reaches_the_api_as_x_api_key_through_api_key_helper() {
    let api = StandIn::start(&[]);
    let p = Project::new("api-key-real");
    let key = format!("sk-ant-api03-{}", fake_token("x"));
    p.write_config(&config(&api, "  api_key: ${TEST_API_KEY}\n"));
    let out = p
        .claunch()
        .env("TEST_API_KEY", &key)
        .arg("up")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(!stdout.contains(&key));
    let hits = api
        .messages()
        .iter()
        .filter(|m| m["headers"]["x-api-key"] == key.as_str())
        .count();
    assert_eq!(hits, 2, "both smoke tests sent the key as x-api-key");
    assert_not_in_inspect(&p, &key);
    // And `exec` works the same way.
    p.claunch()
        .env("TEST_API_KEY", &key)
        .args(["exec", "agent-1", "Say hello"])
        .assert()
        .success()
        .stdout("Hello from the claunch API stand-in.\n");
}
