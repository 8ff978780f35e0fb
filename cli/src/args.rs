//! The command tree of `koru` (clap derive). Global flags fall back to `KORU_*` environment
//! variables, then to the profile in the config file.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The KoruDelta Cloud command line.
#[derive(Debug, Parser)]
#[command(name = "koru", version, about = "Manage KoruDelta Cloud from the terminal", long_about = None)]
pub struct Cli {
    /// Options of every command.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options of every command.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The profile of the config file to use.
    #[arg(long, global = true, env = "KORU_PROFILE")]
    pub profile: Option<String>,
    /// The control plane's URL (default http://127.0.0.1:8080).
    #[arg(long, global = true, env = "KORU_URL")]
    pub url: Option<String>,
    /// An API token or session access token to use instead of the profile's.
    #[arg(
        long = "api-token",
        global = true,
        env = "KORU_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// The organization (slug or id) to act in.
    #[arg(long, global = true, env = "KORU_ORG")]
    pub org: Option<String>,
    /// Output format: table on a terminal, json otherwise.
    #[arg(short = 'o', long, global = true, value_enum)]
    pub output: Option<Format>,
    /// The config file (default `$XDG_CONFIG_HOME/koru/config.toml`).
    #[arg(long, global = true, env = "KORU_CONFIG")]
    pub config: Option<PathBuf>,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// The API's JSON, pretty-printed.
    Json,
    /// The same as YAML.
    Yaml,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in with email and password, an API token, or single sign-on (device flow).
    Login(LoginArgs),
    /// End the session and forget the profile's credentials.
    Logout,
    /// Your organizations.
    Orgs {
        /// What to do (list when absent).
        #[command(subcommand)]
        command: Option<OrgsCommand>,
    },
    /// Create, list, inspect, scale, suspend, resume and delete clusters.
    #[command(subcommand)]
    Clusters(ClustersCommand),
    /// API tokens of the organization (for CI and Terraform).
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Base backups of a cluster.
    #[command(subcommand)]
    Backups(BackupsCommand),
    /// Restore a cluster's backups into a new cluster, as of a moment (point in time).
    Restore(RestoreArgs),
    /// A cluster's endpoint and a fresh data token: printed, exported, or in a shell.
    Connect(ConnectArgs),
    /// Storage and operations per cluster over the last hours.
    Usage(UsageArgs),
    /// The organization's audit log: export it, or verify its chain.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Read and change the config file's profiles.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `koru login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The account's email (prompted when absent).
    #[arg(long, conflicts_with_all = ["token", "sso"])]
    pub email: Option<String>,
    /// Read the password from standard input instead of prompting.
    #[arg(long, conflicts_with_all = ["token", "sso"])]
    pub password_stdin: bool,
    /// Store an API token (`koru_…`) in the profile; needs --org.
    #[arg(long, conflicts_with = "sso")]
    pub token: Option<String>,
    /// Sign in through this organization's single sign-on, approving a code in a browser.
    #[arg(long, value_name = "ORG")]
    pub sso: Option<String>,
    /// Do not try to open a browser for --sso; only print the link and code.
    #[arg(long, env = "KORU_NO_BROWSER", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_browser: bool,
}

/// `koru orgs …`.
#[derive(Debug, Subcommand)]
pub enum OrgsCommand {
    /// The organizations you belong to, with your role.
    List,
}

/// How commands that start an operation wait for it.
#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// Return as soon as the operation has started.
    #[arg(long)]
    pub no_wait: bool,
    /// The longest wait, in seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}

/// `koru clusters …`.
#[derive(Debug, Subcommand)]
pub enum ClustersCommand {
    /// Create a cluster and wait until it runs.
    Create {
        /// Its name (lower-case letters, digits, dashes).
        name: String,
        /// free, pro or enterprise; the organization's plan when absent.
        #[arg(long)]
        tier: Option<String>,
        /// Region label.
        #[arg(long)]
        region: Option<String>,
        /// Members.
        #[arg(long)]
        replicas: Option<u32>,
        /// How to wait.
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// The organization's clusters.
    List,
    /// One cluster, by name or id.
    Get {
        /// Name or id.
        cluster: String,
    },
    /// Change a cluster's replicas, tier or allow list.
    Scale {
        /// Name or id.
        cluster: String,
        /// New number of members.
        #[arg(long)]
        replicas: Option<u32>,
        /// New tier.
        #[arg(long)]
        tier: Option<String>,
        /// Allow only these networks (CIDRs, repeatable or comma-separated) through the gateway.
        #[arg(long = "allow", value_delimiter = ',', conflicts_with = "allow_any")]
        allow: Vec<String>,
        /// Remove the allow list: every address may connect.
        #[arg(long)]
        allow_any: bool,
        /// How to wait.
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Scale a cluster to zero (volumes kept); the next request through the gateway wakes it.
    Suspend {
        /// Name or id.
        cluster: String,
        /// How to wait.
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Wake a suspended cluster.
    Resume {
        /// Name or id.
        cluster: String,
        /// How to wait.
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Delete a cluster (its backups are kept). On a terminal, asks to type its name first.
    Delete {
        /// Name or id.
        cluster: String,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
        /// How to wait.
        #[command(flatten)]
        wait: WaitArgs,
    },
}

/// `koru tokens …`.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// The organization's API tokens (never their secrets).
    List,
    /// Create an API token; its secret is printed once.
    Create {
        /// Its name.
        name: String,
        /// viewer, member, admin or owner (at most yours).
        #[arg(long, default_value = "member")]
        role: String,
        /// Days until it expires; never when absent.
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Revoke an API token by id.
    Revoke {
        /// The token's id.
        id: String,
    },
}

/// `koru backups …`.
#[derive(Debug, Subcommand)]
pub enum BackupsCommand {
    /// Take a base backup now.
    Create {
        /// Name or id.
        cluster: String,
    },
    /// A cluster's base backups and its recoverable window.
    List {
        /// Name or id.
        cluster: String,
    },
}

/// `koru restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The cluster whose backups to restore (name or id).
    #[arg(long)]
    pub from: String,
    /// The new cluster's name.
    #[arg(long)]
    pub name: String,
    /// The moment to restore to (RFC 3339, e.g. 2026-01-02T03:04:05Z); the latest when absent.
    #[arg(long)]
    pub at: Option<String>,
    /// Restore this base backup (its id) instead of choosing by time.
    #[arg(long)]
    pub backup: Option<String>,
    /// How to wait.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `koru connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Name or id.
    pub cluster: String,
    /// read, write or admin (at most what your role allows).
    #[arg(long, default_value = "write")]
    pub scope: String,
    /// The token's lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    pub ttl: u64,
    /// Print `export KORU_URL=… KORU_TOKEN=…` for `eval "$(koru connect … --export)"`.
    #[arg(long, conflicts_with = "shell")]
    pub export: bool,
    /// Open `$SHELL` with KORU_URL and KORU_TOKEN set.
    #[arg(long)]
    pub shell: bool,
}

/// `koru usage`.
#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Hours of history.
    #[arg(long, default_value_t = 24)]
    pub hours: u32,
}

/// `koru audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Write the signed export (NDJSON) to a file or standard output.
    Export {
        /// The file to write; standard output when absent.
        #[arg(long, short = 'f')]
        file: Option<PathBuf>,
    },
    /// Ask the API to verify the organization's chain and signed digests.
    Verify,
}

/// `koru config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Set a key of the profile: url, org or output.
    Set {
        /// url, org or output.
        key: String,
        /// The value.
        value: String,
    },
    /// Print a key of the profile (url, org, output, or the profile's name with `profile`).
    Get {
        /// url, org, output or profile.
        key: String,
    },
    /// Make a profile the default (it is created when new).
    UseProfile {
        /// Its name.
        name: String,
    },
    /// The profiles, and which one is used.
    List,
}
