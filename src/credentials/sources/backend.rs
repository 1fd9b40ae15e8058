//! The sources that run a program: the user's `command` and the AWS, Google Cloud and
//! Azure CLIs. What each is run with to read, write and create the secret (the value
//! always on stdin or in a private file, never in argv). What its errors mean: `diagnose`.

use crate::config::CredentialsSpec;

use super::error::ErrorKind;

/// A source read and written through a program.
#[derive(Debug, Clone, Copy)]
pub enum Backend<'a> {
    Command {
        read: &'a [String],
        write: Option<&'a [String]>,
    },
    Aws {
        id: &'a str,
        region: Option<&'a str>,
        profile: Option<&'a str>,
    },
    Gcp {
        name: &'a str,
        project: Option<&'a str>,
    },
    Azure {
        vault: &'a str,
        name: &'a str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    Create,
}

/// How a write hands the value over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// On stdin.
    Stdin,
    /// In a private file whose path is appended to the argv (az cannot read stdin).
    File,
}

#[derive(Debug, Clone)]
pub struct Invocation {
    pub argv: Vec<String>,
    pub input: Input,
}

/// What a failed run means: the kind, the message and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub kind: ErrorKind,
    pub message: String,
    pub hint: Option<String>,
}

fn strings(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_owned()).collect()
}

impl<'a> Backend<'a> {
    pub fn of(spec: &'a CredentialsSpec) -> Option<Self> {
        Some(match spec {
            CredentialsSpec::Command {
                command,
                write_command,
            } => Self::Command {
                read: command,
                write: write_command.as_deref(),
            },
            CredentialsSpec::AwsSecret {
                id,
                region,
                profile,
            } => Self::Aws {
                id,
                region: region.as_deref(),
                profile: profile.as_deref(),
            },
            CredentialsSpec::GcpSecret { name, project } => Self::Gcp {
                name,
                project: project.as_deref(),
            },
            CredentialsSpec::AzureSecret { vault, name } => Self::Azure { vault, name },
            _ => return None,
        })
    }

    /// The program, for messages.
    pub fn program(&self) -> &str {
        match self {
            Self::Command { read, .. } => read.first().map_or("", String::as_str),
            Self::Aws { .. } => "aws",
            Self::Gcp { .. } => "gcloud",
            Self::Azure { .. } => "az",
        }
    }

    /// Variables the program gets set.
    pub fn env(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            // AWS CLI v2 pipes output through a pager unless told not to.
            Self::Aws { .. } => &[("AWS_PAGER", "")],
            _ => &[],
        }
    }

    fn aws_tail(region: Option<&str>, profile: Option<&str>) -> Vec<String> {
        let mut tail = Vec::new();
        if let Some(region) = region {
            tail.extend(["--region".to_owned(), region.to_owned()]);
        }
        if let Some(profile) = profile {
            tail.extend(["--profile".to_owned(), profile.to_owned()]);
        }
        tail
    }

    fn gcp_tail(project: Option<&str>) -> Vec<String> {
        project
            .map(|p| vec![format!("--project={p}")])
            .unwrap_or_default()
    }

    /// Prints the current value on stdout.
    pub fn read(&self) -> Vec<String> {
        match *self {
            Self::Command { read, .. } => read.to_vec(),
            Self::Aws {
                id,
                region,
                profile,
            } => {
                let mut argv = strings(&["aws", "secretsmanager", "get-secret-value"]);
                argv.extend(strings(&[
                    "--secret-id",
                    id,
                    "--query",
                    "SecretString",
                    "--output",
                    "text",
                ]));
                argv.extend(Self::aws_tail(region, profile));
                argv
            }
            Self::Gcp { name, project } => {
                let mut argv = strings(&["gcloud", "secrets", "versions", "access", "latest"]);
                argv.push(format!("--secret={name}"));
                argv.extend(Self::gcp_tail(project));
                argv
            }
            Self::Azure { vault, name } => strings(&[
                "az",
                "keyvault",
                "secret",
                "show",
                "--vault-name",
                vault,
                "--name",
                name,
                "--query",
                "value",
                "-o",
                "tsv",
            ]),
        }
    }

    /// Stores a new value in an existing secret; `None` for a read-only `command`.
    pub fn write(&self) -> Option<Invocation> {
        let (argv, input) = match *self {
            Self::Command { write, .. } => (write?.to_vec(), Input::Stdin),
            Self::Aws {
                id,
                region,
                profile,
            } => {
                let mut argv = strings(&[
                    "aws",
                    "secretsmanager",
                    "put-secret-value",
                    "--secret-id",
                    id,
                    "--secret-string",
                    "file:///dev/stdin",
                ]);
                argv.extend(Self::aws_tail(region, profile));
                (argv, Input::Stdin)
            }
            Self::Gcp { name, project } => {
                let mut argv = strings(&["gcloud", "secrets", "versions", "add", name]);
                argv.push("--data-file=-".to_owned());
                argv.extend(Self::gcp_tail(project));
                (argv, Input::Stdin)
            }
            Self::Azure { vault, name } => (
                strings(&[
                    "az",
                    "keyvault",
                    "secret",
                    "set",
                    "--vault-name",
                    vault,
                    "--name",
                    name,
                    "--file",
                ]),
                Input::File,
            ),
        };
        Some(Invocation { argv, input })
    }

    /// Creates the secret with its first value (`az … set` and `write_command` create too).
    pub fn create(&self) -> Option<Invocation> {
        match *self {
            Self::Aws {
                id,
                region,
                profile,
            } => {
                let mut argv = strings(&[
                    "aws",
                    "secretsmanager",
                    "create-secret",
                    "--name",
                    id,
                    "--secret-string",
                    "file:///dev/stdin",
                ]);
                argv.extend(Self::aws_tail(region, profile));
                Some(Invocation {
                    argv,
                    input: Input::Stdin,
                })
            }
            Self::Gcp { name, project } => {
                let mut argv = strings(&["gcloud", "secrets", "create", name, "--data-file=-"]);
                argv.extend(Self::gcp_tail(project));
                Some(Invocation {
                    argv,
                    input: Input::Stdin,
                })
            }
            Self::Azure { .. } | Self::Command { .. } => self.write(),
        }
    }

    /// The `claunch creds export` command that puts the host's login here.
    pub fn export_command(&self) -> Option<String> {
        let flags: Vec<String> = match *self {
            Self::Command { .. } => return None,
            Self::Aws {
                id,
                region,
                profile,
            } => [
                Some(format!("aws_secret --id {id}")),
                region.map(|r| format!("--region {r}")),
                profile.map(|p| format!("--profile {p}")),
            ]
            .into_iter()
            .flatten()
            .collect(),
            Self::Gcp { name, project } => [
                Some(format!("gcp_secret --name {name}")),
                project.map(|p| format!("--project {p}")),
            ]
            .into_iter()
            .flatten()
            .collect(),
            Self::Azure { vault, name } => {
                vec![format!("azure_secret --vault {vault} --name {name}")]
            }
        };
        Some(format!("claunch creds export --to {}", flags.join(" ")))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::credentials::sources) const AWS: Backend<'static> = Backend::Aws {
        id: "claude-oauth-credentials",
        region: Some("eu-west-1"),
        profile: None,
    };
    pub(in crate::credentials::sources) const GCP: Backend<'static> = Backend::Gcp {
        name: "claude-creds",
        project: Some("p1"),
    };
    pub(in crate::credentials::sources) const AZ: Backend<'static> = Backend::Azure {
        vault: "v1",
        name: "claude-creds",
    };

    #[test]
    fn argv_never_carries_a_value() {
        assert_eq!(
            AWS.write().unwrap().argv.join(" "),
            "aws secretsmanager put-secret-value --secret-id claude-oauth-credentials --secret-string file:///dev/stdin --region eu-west-1"
        );
        assert_eq!(
            GCP.read().join(" "),
            "gcloud secrets versions access latest --secret=claude-creds --project=p1"
        );
        assert_eq!(
            GCP.create().unwrap().argv.join(" "),
            "gcloud secrets create claude-creds --data-file=- --project=p1"
        );
        let az = AZ.write().unwrap();
        assert_eq!(az.input, Input::File);
        assert_eq!(az.argv.last().unwrap(), "--file");
    }
}
