//! An image reference as docker reads it: the registry it comes from, the repository, and
//! the tag or digest (`latest` when neither is given).

/// Docker Hub, where a name without a registry comes from.
pub const DEFAULT_REGISTRY: &str = "docker.io";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `docker.io`, `ghcr.io`, `localhost:5000`…
    pub registry: String,
    /// The name without tag or digest, as written (`my-agent`, `ghcr.io/org/agent`).
    pub repository: String,
    /// The tag, or the digest (`sha256:…`).
    pub tag: String,
}

/// Splits `image` the way the engine does: the first component is a registry when it has
/// a `.` or a `:`, or is `localhost`.
pub fn parse(image: &str) -> Reference {
    let (named, digest) = match image.split_once('@') {
        Some((named, digest)) => (named, Some(digest)),
        None => (image, None),
    };
    let last = named.rfind('/').map_or(0, |i| i + 1);
    let (repository, tag) = match named[last..].rfind(':') {
        Some(i) => (&named[..last + i], Some(&named[last + i + 1..])),
        None => (named, None),
    };
    let registry = match repository.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => DEFAULT_REGISTRY,
    };
    Reference {
        registry: registry.to_string(),
        repository: repository.to_string(),
        tag: digest.or(tag).unwrap_or("latest").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(image: &str) -> (String, String, String) {
        let r = parse(image);
        (r.registry, r.repository, r.tag)
    }

    #[test]
    fn registries_tags_and_digests_are_found() {
        let t = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
        assert_eq!(parts("busybox"), t("docker.io", "busybox", "latest"));
        assert_eq!(parts("my/agent:1.2"), t("docker.io", "my/agent", "1.2"));
        assert_eq!(
            parts("ghcr.io/org/agent:dev"),
            t("ghcr.io", "ghcr.io/org/agent", "dev")
        );
        assert_eq!(
            parts("localhost:5000/agent"),
            t("localhost:5000", "localhost:5000/agent", "latest")
        );
        assert_eq!(
            parts("localhost/agent:x"),
            t("localhost", "localhost/agent", "x")
        );
        assert_eq!(
            parts("reg.example:443/a/b:t@sha256:abc"),
            t("reg.example:443", "reg.example:443/a/b", "sha256:abc")
        );
    }
}
