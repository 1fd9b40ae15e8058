//! Which files a dynamically linked executable needs to run in an empty image: its
//! loader and every shared library it links, found the way the loader would find them
//! (runpath, then the standard library directories, no `ld.so.cache`), recursively.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use super::elf::{self, Elf, ElfError};

/// One file to put in the image: where the loader will look for it, and which host file
/// (symlinks followed) holds its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needed {
    /// Absolute path in the image, e.g. `/lib/x86_64-linux-gnu/libc.so.6`.
    pub image_path: String,
    /// The host file to copy, canonical.
    pub source: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum DepsError {
    #[error("{}: {source}", path.display())]
    Elf { path: PathBuf, source: ElfError },
    #[error("{}: its loader {interp} is not on this host", path.display())]
    NoLoader { path: PathBuf, interp: String },
    #[error("{} needs {name}, which is in none of {}", needed_by.display(), searched.join(", "))]
    NotFound {
        name: String,
        needed_by: PathBuf,
        searched: Vec<String>,
    },
}

/// The standard library directories for an ELF machine, in the order a glibc loader
/// without `ld.so.cache` searches them (Debian's multiarch directories first).
pub fn standard_dirs(machine: u16) -> Vec<String> {
    let triplet = match machine {
        elf::EM_X86_64 => Some("x86_64-linux-gnu"),
        elf::EM_AARCH64 => Some("aarch64-linux-gnu"),
        _ => None,
    };
    let mut dirs = Vec::new();
    if let Some(t) = triplet {
        dirs.push(format!("/lib/{t}"));
        dirs.push(format!("/usr/lib/{t}"));
    }
    dirs.extend(["/lib64", "/usr/lib64", "/lib", "/usr/lib"].map(String::from));
    dirs
}

/// The loader and libraries `binary` needs, each once, sorted by image path.
///
/// `image_path` is where the binary itself goes in the image (a `$ORIGIN` runpath is
/// relative to it there, and to the binary's host directory here). `root` prefixes
/// every host lookup: `/` on a real host, a directory in tests.
pub fn resolve(binary: &Path, image_path: &str, root: &Path) -> Result<Vec<Needed>, DepsError> {
    let top = read(binary)?;
    let mut out: BTreeMap<String, PathBuf> = BTreeMap::new();
    // The loader is already in the process when libraries are looked up, and it answers
    // to its own soname: libc's DT_NEEDED on ld-linux is satisfied by it.
    let mut loaded: HashSet<String> = HashSet::new();
    if let Some(interp) = &top.interp {
        let host = under(root, interp);
        let source = host.canonicalize().map_err(|_| DepsError::NoLoader {
            path: binary.to_path_buf(),
            interp: interp.clone(),
        })?;
        out.insert(interp.clone(), source);
        if let Some(name) = Path::new(interp).file_name() {
            loaded.insert(name.to_string_lossy().into_owned());
        }
    }
    let standard: Vec<(PathBuf, String)> = standard_dirs(top.machine)
        .into_iter()
        .map(|d| (under(root, &d), d))
        .collect();
    let binary_dir = binary
        .canonicalize()
        .unwrap_or_else(|_| binary.to_path_buf());
    let mut queue: VecDeque<Object> = VecDeque::from([Object {
        host_dir: binary_dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        image_dir: parent(image_path),
        path: binary.to_path_buf(),
        elf: top,
    }]);
    while let Some(object) = queue.pop_front() {
        // The object's own runpath first, then the standard directories.
        let dirs: Vec<(PathBuf, String)> = object
            .elf
            .runpath
            .iter()
            .map(|entry| match entry.strip_prefix("$ORIGIN") {
                Some(rest) => (
                    object.host_dir.join(rest.trim_start_matches('/')),
                    normalize(&format!("{}/{rest}", object.image_dir)),
                ),
                None => (under(root, entry), normalize(entry)),
            })
            .chain(standard.iter().cloned())
            .collect();
        for name in &object.elf.needed {
            if !loaded.insert(name.clone()) {
                continue;
            }
            let found = dirs.iter().find_map(|(host_dir, image_dir)| {
                let host = host_dir.join(name);
                // The loader skips a file of another machine (a 32-bit libc in /usr/lib).
                let lib = read(&host)
                    .ok()
                    .filter(|e| e.machine == object.elf.machine)?;
                Some((host, image_dir.clone(), lib))
            });
            let Some((host, image_dir, lib)) = found else {
                return Err(DepsError::NotFound {
                    name: name.clone(),
                    needed_by: object.path.clone(),
                    searched: dirs.iter().map(|(_, d)| d.clone()).collect(),
                });
            };
            let source = host.canonicalize().unwrap_or_else(|_| host.clone());
            out.insert(
                format!("{}/{name}", image_dir.trim_end_matches('/')),
                source.clone(),
            );
            queue.push_back(Object {
                host_dir: source.parent().map(Path::to_path_buf).unwrap_or_default(),
                image_dir,
                path: host,
                elf: lib,
            });
        }
    }
    Ok(out
        .into_iter()
        .map(|(image_path, source)| Needed { image_path, source })
        .collect())
}

/// An object whose own needs are still to be looked up.
struct Object {
    path: PathBuf,
    /// Where `$ORIGIN` points, on the host and in the image.
    host_dir: PathBuf,
    image_dir: String,
    elf: Elf,
}

fn parent(path: &str) -> String {
    match path.rsplit_once('/') {
        Some(("", _)) | None => "/".into(),
        Some((dir, _)) => dir.into(),
    }
}

/// `/a/b/../c/./d` as `/a/c/d`, without touching any filesystem.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

fn read(path: &Path) -> Result<Elf, DepsError> {
    elf::read_file(path).map_err(|source| DepsError::Elf {
        path: path.to_path_buf(),
        source,
    })
}

fn under(root: &Path, absolute: &str) -> PathBuf {
    root.join(absolute.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::image::elf::tests::synthetic;

    fn put(root: &Path, path: &str, bytes: &[u8]) {
        let p = under(root, path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    #[test]
    fn follows_needed_recursively_through_symlinks_and_runpath() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let interp = "/lib64/ld-linux-x86-64.so.2";
        let tool = synthetic(
            Some(interp),
            &["libapp.so", "libc.so.6"],
            Some("$ORIGIN/../lib"),
        );
        put(root, "/opt/app/bin/tool", &tool);
        put(
            root,
            "/opt/app/lib/libapp.so",
            &synthetic(None, &["libm.so.6", "libc.so.6"], None),
        );
        // Merged /usr: the loader path and the multiarch directory are symlinks.
        let gnu = "/usr/lib/x86_64-linux-gnu";
        put(
            root,
            &format!("{gnu}/ld-linux-x86-64.so.2"),
            &synthetic(None, &[], None),
        );
        put(
            root,
            &format!("{gnu}/libc.so.6"),
            &synthetic(None, &["ld-linux-x86-64.so.2"], None),
        );
        put(
            root,
            &format!("{gnu}/libm-2.36.so"),
            &synthetic(None, &["libc.so.6"], None),
        );
        symlink("libm-2.36.so", under(root, &format!("{gnu}/libm.so.6"))).unwrap();
        std::fs::create_dir_all(under(root, "/usr/lib64")).unwrap();
        symlink(
            "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            under(root, "/usr/lib64/ld-linux-x86-64.so.2"),
        )
        .unwrap();
        symlink("usr/lib64", under(root, "/lib64")).unwrap();
        // A 32-bit libc earlier in the search order is skipped, as the loader does.
        let mut libc32 = synthetic(None, &[], None);
        libc32[4] = 1;
        put(root, "/lib/x86_64-linux-gnu/libc.so.6", &libc32);

        let got = resolve(
            &under(root, "/opt/app/bin/tool"),
            "/usr/local/bin/tool",
            root,
        )
        .unwrap();
        let found: Vec<(&str, PathBuf)> = got
            .iter()
            .map(|n| {
                (
                    n.image_path.as_str(),
                    n.source
                        .strip_prefix(root.canonicalize().unwrap())
                        .unwrap()
                        .to_path_buf(),
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                (
                    interp,
                    PathBuf::from("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
                ),
                (
                    "/usr/lib/x86_64-linux-gnu/libc.so.6",
                    PathBuf::from("usr/lib/x86_64-linux-gnu/libc.so.6")
                ),
                (
                    "/usr/lib/x86_64-linux-gnu/libm.so.6",
                    PathBuf::from("usr/lib/x86_64-linux-gnu/libm-2.36.so")
                ),
                // $ORIGIN is the binary's directory: on the host to find it, in the image to place it.
                (
                    "/usr/local/lib/libapp.so",
                    PathBuf::from("opt/app/lib/libapp.so")
                ),
            ]
        );
    }

    #[test]
    fn paths_are_normalized_without_the_filesystem() {
        assert_eq!(normalize("/usr/local/bin/../lib/./x"), "/usr/local/lib/x");
        assert_eq!(normalize("/../../a"), "/a");
        assert_eq!(parent("/usr/local/bin/claude"), "/usr/local/bin");
        assert_eq!(parent("/claude"), "/");
    }

    #[test]
    fn a_missing_library_names_it_and_where_it_was_looked_for() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        put(root, "/bin/tool", &synthetic(None, &["libnope.so.1"], None));
        let err = resolve(&under(root, "/bin/tool"), "/usr/local/bin/tool", root)
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs libnope.so.1, which is in none of /lib/x86_64-linux-gnu, /usr/lib/x86_64-linux-gnu, /lib64"), "{err}");
    }

    #[test]
    fn a_static_binary_needs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "/bin/busybox", &synthetic(None, &[], None));
        assert_eq!(
            resolve(
                &under(dir.path(), "/bin/busybox"),
                "/bin/busybox",
                dir.path()
            )
            .unwrap(),
            vec![]
        );
    }

    #[test]
    fn the_test_binary_resolves_on_this_host() {
        let got = resolve(
            &std::env::current_exe().unwrap(),
            "/usr/local/bin/t",
            Path::new("/"),
        )
        .unwrap();
        assert!(
            got.iter().any(|n| n.image_path.ends_with("/libc.so.6")),
            "{got:?}"
        );
        assert!(got.iter().all(|n| n.source.is_file()), "{got:?}");
    }
}
