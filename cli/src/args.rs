//! Command-line arguments: what the user types, as clap structs.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

/// One CLI for a polyrepo of microservices, driven by workspace.toml.
#[derive(Debug, Parser)]
#[command(name = "plat", version, propagate_version = true, max_term_width = 100)]
#[command(after_help = "\
Examples:
  plat validate                    check workspace.toml
  plat sync                        clone or fetch every service repository
  plat status                      branch, commit and changes of every service
  plat graph                       the services in dependency order

Exit status: 0 success, 1 the work failed, 2 usage or manifest error.
Documentation: docs/cli.md and docs/manifest.md")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Run as if plat was started in DIR
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub directory: Option<PathBuf>,

    /// Use this workspace.toml instead of searching upward from the current directory
    #[arg(long, global = true, value_name = "PATH", env = "PLAT_MANIFEST")]
    pub manifest: Option<PathBuf>,

    /// Log more (-v debug, -vv trace); PLAT_LOG sets a filter instead
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    /// Print only errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// When to colour output; NO_COLOR=1 also turns it off
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// When to use colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal, unless NO_COLOR is set
    Auto,
    /// Always colour
    Always,
    /// Never colour
    Never,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check workspace.toml and report every problem with its line
    #[command(after_help = "\
Examples:
  plat validate
  plat validate --json
  plat --manifest other/workspace.toml validate")]
    Validate(JsonArgs),

    /// Print the JSON Schema of workspace.toml, for editors
    #[command(after_help = "\
Examples:
  plat schema > workspace.schema.json
  # then, first line of workspace.toml for taplo / Even Better TOML:
  #:schema ./workspace.schema.json")]
    Schema,

    /// Show the services in dependency order
    #[command(after_help = "\
Examples:
  plat graph
  plat graph --json | jq '.waves'
  plat graph --dot | dot -Tsvg > graph.svg")]
    Graph(GraphArgs),

    /// Clone missing service repositories, fetch the others, check out each one's rev
    #[command(visible_alias = "clone")]
    #[command(after_help = "\
Local work is never lost: a checkout with uncommitted changes, unpushed commits or a diverged
branch is reported and left as it is. Resolved commits are written to plat.lock.

Examples:
  plat sync
  plat sync order-service -j 2
  plat sync --locked               check out exactly what plat.lock says (CI)")]
    Sync(SyncArgs),

    /// Show branch, commit, changes and lock drift of every service
    #[command(after_help = "\
Examples:
  plat status
  plat status --json | jq '.[] | select(.dirty > 0) | .name'")]
    Status(StatusArgs),

    /// Check the tools and services plat's commands need
    #[command(after_help = "\
Exits 1 when something a command of this workspace needs is missing.

Examples:
  plat doctor
  plat doctor --json")]
    Doctor(JsonArgs),

    /// Generate code from the protobuf contracts, lint them, check them for breaking changes
    #[command(subcommand)]
    Proto(ProtoCommand),

    /// Print shell completions
    #[command(after_help = "\
Examples:
  plat completions bash > ~/.local/share/bash-completion/completions/plat
  plat completions zsh > ~/.zfunc/_plat
  plat completions fish > ~/.config/fish/completions/plat.fish")]
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
}

/// `--json` alone.
#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print machine-readable JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `plat graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Print `{"services": [...], "waves": [[...], ...]}` as JSON
    #[arg(long, conflicts_with = "dot")]
    pub json: bool,
    /// Print the graph in Graphviz dot format
    #[arg(long)]
    pub dot: bool,
}

/// Arguments of `plat sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Services to sync (default: all)
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Repositories to work on at once
    #[arg(short, long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    /// Check out exactly the commits in plat.lock; fail if it is missing or out of date
    #[arg(long)]
    pub locked: bool,
}

/// Arguments of `plat status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Services to show (default: all)
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Print a JSON array, one object per service
    #[arg(long)]
    pub json: bool,
}

/// `plat proto` subcommands.
#[derive(Debug, Subcommand)]
pub enum ProtoCommand {
    /// Generate each service's prost + tonic code from proto/ into <service>/src/proto/
    #[command(after_help = "\
Each service gets the packages its `proto.serves` and `proto.uses` name. The code is committed in
the service's own tree, so the service builds with no protoc and no buf.

Examples:
  plat proto gen
  plat proto gen --check           exit 1 and list stale files (CI)
  plat proto gen --engine builtin  do not use buf even if it is installed")]
    Gen(ProtoGenArgs),

    /// Lint proto/ with buf's rules (buf lint, or plat's own checks without buf)
    #[command(after_help = "\
Findings print as `file:line:column RULE_ID message`, files relative to the proto directory; the
exit status is 1 when there is any. Rules come from buf.yaml's `lint` section (STANDARD unless it
says otherwise); `except`, `ignore` and `ignore_only` apply to both engines.

Examples:
  plat proto lint
  plat proto lint --json | jq '.[].rule'
  plat proto lint --engine builtin  do not use buf even if it is installed")]
    Lint(ProtoLintArgs),

    /// Check proto/ for breaking changes against a git ref (buf breaking, or plat's own checks)
    #[command(after_help = "\
The old files are read from the git object database: no checkout, no network. Rules come from
buf.yaml's `breaking` section (category FILE unless it says otherwise: FILE, PACKAGE, WIRE_JSON,
WIRE); the exit status is 1 when anything breaks.

Examples:
  plat proto breaking --against main
  plat proto breaking --against HEAD~1 --engine builtin
  plat proto breaking --against origin/main --json   (CI; in a shallow clone, fetch it first)")]
    Breaking(ProtoBreakingArgs),

    /// Run as a buf/protoc plugin: CodeGeneratorRequest on stdin, response on stdout
    #[command(hide = true)]
    Plugin,
}

/// Which engine `plat proto` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineChoice {
    /// buf when it is on PATH, plat's own engine otherwise
    Auto,
    /// buf (an error when it is not installed)
    Buf,
    /// plat's own engine, even when buf is installed
    Builtin,
}

/// Arguments of `plat proto gen`.
#[derive(Debug, Args)]
pub struct ProtoGenArgs {
    /// Change nothing; exit 1 listing the files that differ from what would be generated
    #[arg(long)]
    pub check: bool,
    /// Which engine generates the code
    #[arg(long, value_enum, default_value_t = EngineChoice::Auto, env = "PLAT_PROTO_ENGINE")]
    pub engine: EngineChoice,
    /// Print the changes as JSON
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `plat proto lint`.
#[derive(Debug, Args)]
pub struct ProtoLintArgs {
    /// Which engine lints
    #[arg(long, value_enum, default_value_t = EngineChoice::Auto, env = "PLAT_PROTO_ENGINE")]
    pub engine: EngineChoice,
    /// Print the findings as a JSON array of {path, line, column, rule, message}
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `plat proto breaking`.
#[derive(Debug, Args)]
pub struct ProtoBreakingArgs {
    /// The git ref to compare with: a branch, tag, commit, or e.g. HEAD~1
    #[arg(long, value_name = "REF")]
    pub against: String,
    /// Which engine checks
    #[arg(long, value_enum, default_value_t = EngineChoice::Auto, env = "PLAT_PROTO_ENGINE")]
    pub engine: EngineChoice,
    /// Print the findings as a JSON array of {path, line, column, rule, message}
    #[arg(long)]
    pub json: bool,
}
