//! `collect` from a container that makes hostile things with busybox, against the real
//! engine: device nodes, FIFOs, symbolic and hard links, names that are not UTF-8, names
//! that collide on a case-insensitive filesystem, and more than the (configured) bounds.
//! Each is left out or fails that task's collection, never the run, and the task's line
//! says what was collected and what was refused. (`../` and absolute names: the engine's
//! archive of a container path never holds them; the synthetic streams of
//! `engine::archive`'s unit tests cover them.)

use serde_json::Value;

use crate::run::{fleet, results, write_tasks};

fn task(id: &str, collect: &str) -> String {
    serde_json::json!({"id": id, "prompt": "hello", "collect": [collect]}).to_string()
}

#[test]
fn collected_files_refuse_what_is_hostile_and_stop_at_configured_bounds() {
    let p = fleet("run-hostile", &[("a", 1)]);
    let (_, id) = p.containers().remove(0);
    // Made as root (mknod needs it); the stream the engine sends is the container's.
    p.sh(
        &id,
        r#"set -e
mkdir -p /work/h/sub /work/big /work/many
cd /work/h
echo good > good.txt
echo deeper > sub/x.txt
ln good.txt second-name
ln /etc/passwd hard-outside
ln -s /etc/passwd link
mknod dev c 1 3
mkfifo fifo
echo upper > Same
echo lower > same
touch "$(printf 'bad\377name')"
dd if=/dev/zero of=/work/big/blob bs=1024 count=10 2>/dev/null
i=0; while [ $i -lt 30 ]; do echo $i > /work/many/f$i; i=$((i+1)); done
chown -R 1000:1000 /work"#,
    );
    write_tasks(
        &p,
        &[
            task("hostile", "/work/h"),
            task("big", "/work/big"),
            task("many", "/work/many"),
        ],
    );
    let run = p
        .claunch()
        .args([
            "run",
            "tasks.jsonl",
            "--collect-max-bytes",
            "8KiB",
            "--collect-max-entries",
            "20",
        ])
        .assert()
        .code(1);
    let err = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
    let lines = results(&p);
    let line = |id: &str| -> &Value { lines.iter().find(|l| l["id"] == id).unwrap() };

    let hostile = line("hostile");
    assert_eq!(hostile["status"], "ok", "{hostile}\n{err}");
    let refused: Vec<(String, String)> = hostile["refused"]
        .as_array()
        .unwrap_or_else(|| panic!("{hostile}"))
        .iter()
        .map(|r| {
            assert_eq!(r["from"], "/work/h", "{r}");
            (
                r["path"].as_str().unwrap().to_string(),
                r["why"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let why = |path: &str| -> &str {
        refused
            .iter()
            .find(|(p, _)| p == path)
            .map_or_else(|| panic!("{path} not refused: {refused:?}"), |(_, w)| w)
    };
    assert_eq!(why("h/dev"), "a device");
    assert_eq!(why("h/fifo"), "a FIFO");
    assert_eq!(why("h/link"), "a symbolic link");
    assert_eq!(why("h/bad\u{fffd}name"), "a name that is not valid UTF-8");
    // Two names of one file inside the tree: the second is a link, refused.
    let hard: Vec<&(String, String)> = refused.iter().filter(|(_, w)| w == "a hard link").collect();
    assert_eq!(hard.len(), 1, "{refused:?}");
    // `Same` comes first in the archive; `same` would overwrite it on macOS or Windows.
    assert_eq!(
        why("h/same"),
        "the same name as h/Same on a case-insensitive filesystem"
    );
    assert_eq!(refused.len(), 6, "{refused:?}");
    let dir = p.path("tasks.results/hostile/h");
    assert_eq!(
        std::fs::read_to_string(dir.join("good.txt")).unwrap(),
        "good\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("Same")).unwrap(),
        "upper\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("sub/x.txt")).unwrap(),
        "deeper\n"
    );
    // A hard link to a file outside the tree arrives as a plain copy: nothing on the
    // host is linked.
    let copy = std::fs::symlink_metadata(dir.join("hard-outside")).unwrap();
    assert!(copy.is_file(), "{copy:?}");
    for name in ["dev", "fifo", "link", "same"] {
        assert!(std::fs::symlink_metadata(dir.join(name)).is_err(), "{name}");
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, ["Same", "good.txt", "hard-outside", "sub"]);
    let collected = &hostile["collected"];
    assert_eq!(collected["dirs"], 2, "{hostile}");
    assert_eq!(collected["files"], 4, "{hostile}");
    assert!(collected["bytes"].as_u64().unwrap() > 20, "{hostile}");
    assert!(
        err.contains("hostile: left out /work/h: h/dev (a device)"),
        "{err}"
    );

    for (id, what, flag) in [
        (
            "big",
            "more than 8192 bytes of files",
            "--collect-max-bytes",
        ),
        ("many", "more than 20 entries", "--collect-max-entries"),
    ] {
        let l = line(id);
        assert_eq!(l["status"], "failed", "{l}");
        assert_eq!(l["error"]["class"], "collect", "{l}");
        assert_eq!(
            l["error"]["message"],
            format!("collecting /work/{id}: {what} (the bound for one task's collect)\n  hint: what was collected before it is kept; raise the bound with `claunch run {flag}` if the task's output is meant to be that large"),
            "{l}"
        );
        assert_eq!(l["attempts"], 1, "a bound is not retried: {l}");
        assert!(l["collected"].is_object(), "{l}");
    }
}
