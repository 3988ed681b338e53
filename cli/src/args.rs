//! Command-line arguments: what the user types, as clap structs.

use std::path::PathBuf;
use std::time::Duration;

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
  plat migrate                     apply every service's pending SQL migrations
  plat up                          build, migrate and start the platform
  plat logs -f order-service       follow a service's logs
  plat deploy render               the platform as a Kubernetes (kustomize) tree

Exit status: 0 success, 1 the work failed, 2 usage or input error (the command line,
workspace.toml, or the contracts in proto/).
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

    /// Name the workspace's containers, network, volume and images by NAME instead of its
    /// `[workspace] name`: a second checkout of the same workspace, run beside the first
    #[arg(short = 'p', long, global = true, value_name = "NAME", env = "PLAT_PROJECT")]
    pub project: Option<String>,

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

    /// Clone missing service and library repositories, fetch the others, check out each one's rev
    #[command(visible_alias = "clone")]
    #[command(after_help = "\
A checkout moves whenever git itself would: untracked and ignored files, and local changes the
move does not touch, stay as they are. Local work is never lost: a checkout whose changes the move
would overwrite, whose branch has diverged, or which would leave a branch with uncommitted changes
is left as it is, named with its files and the command that resolves it, and the run exits 1.
Resolved commits are written to plat.lock.

Examples:
  plat sync
  plat sync order-service -j 2
  plat sync --locked               check out exactly what plat.lock says (CI)")]
    Sync(SyncArgs),

    /// Show branch, commit, changes and lock drift of every service and library
    #[command(after_help = "\
Examples:
  plat status
  plat status --json | jq '.[] | select(.dirty > 0) | .name'")]
    Status(StatusArgs),

    /// Apply each service's SQL migrations to its own PostgreSQL database
    #[command(args_conflicts_with_subcommands = true)]
    #[command(after_help = "\
Every service with a `database` in workspace.toml, in dependency order, or the ones named. Each
migration runs in its own transaction with its history row (table plat_migrations); concurrent
runs on one database wait for each other. Applied migrations that changed or disappeared, and
pending ones older than the newest applied, stop the run before anything is applied.

A service's database URL comes from --database-url, else DATABASE_URL_<SERVICE> (e.g.
DATABASE_URL_USER_SERVICE), else the workspace's running database container (`plat db start`
starts it). Its database is created when missing.

Examples:
  plat migrate                                 every service with a database
  plat migrate user-service --database-url postgres://postgres@localhost:5432
  DATABASE_URL_USER_SERVICE=postgres://app:secret@db/users plat migrate user-service
  plat migrate status
  plat migrate new user-service add_email_to_users

Documentation: docs/migrations.md")]
    Migrate(MigrateArgs),

    /// Build each service's image; an image whose inputs did not change is kept
    #[command(after_help = "\
A `cargo` service (the default) is compiled on the host as a static Linux binary and packaged
FROM scratch, which needs no registry; a `dockerfile` service's context (minus .dockerignore) is
built by the Engine; a `command` service runs its command. The image is the service's `image`,
tagged `dev` unless it names a tag: by default <workspace>/<service>:dev. A service that is only
an image (`image = \"name:tag\"`, no build) is never built: it runs as it is.

Examples:
  plat build
  plat build user-service
  plat build -v                    show cargo's output as it compiles
  plat build --explain             say which inputs changed since each image was built")]
    Build(BuildArgs),

    /// Build, migrate and start the platform, each service ready before its dependents start
    #[command(after_help = "\
Images are built (as `plat build`), the workspace's PostgreSQL container started and every
service's migrations applied (as `plat migrate`), then the services' containers are started wave
by wave (`plat graph`): a wave starts once the one before it passes its health checks. Run again,
it changes only what changed: an unchanged container keeps running. Returns once everything is
up; `plat logs -f` follows the services, `plat down` removes them.

With --watch, plat then watches each service's directory and the libraries': a change a service
is built from rebuilds it (a failed build leaves its container serving and shows the compiler's
errors), applies its new migrations and replaces its container; the logs stream meanwhile.

Examples:
  plat up
  plat up api-gateway              that service and what it depends on
  plat up --watch                  the inner loop: edit, and the new code serves seconds later
  plat up --no-build               use the images already on this machine")]
    Up(UpArgs),

    /// Stop and remove the platform's containers and network; the database keeps its data
    #[command(after_help = "\
Dependents stop before what they depend on; each service gets SIGTERM and 10 s to drain.

Examples:
  plat down
  plat down --volumes              also delete the database's data")]
    Down(DownArgs),

    /// Show the platform's containers: state, health, whether up to date, published ports
    #[command(after_help = "\
Examples:
  plat ps
  plat ps --json | jq '.[] | select(.health != \"healthy\") | .service'")]
    Ps(JsonArgs),

    /// Show the services' logs merged in time order, one readable line per event
    #[command(after_help = "\
The JSON lines the services write (pkg's) are shown as time, level, service, message and fields;
other lines pass through as they are. Lines of all services are merged in the order they were
written. `-f` follows the containers, and a service's new container when `plat up` replaces it.

Examples:
  plat logs order-service
  plat logs -f                     follow every service
  plat logs -n 20 user-service order-service
  plat logs --trace 4bf92f35       one request across every service (trace or request id)
  plat logs --level warn --since 10m
  plat logs --json | jq .          the lines as the services wrote them")]
    Logs(LogsArgs),

    /// Run the services' own tests; the contract (--contract) or end-to-end (--e2e) tests
    #[command(after_help = "\
With no --contract or --e2e: every service's own tests, in its own checkout: `cargo nextest run`
(or `cargo test` without nextest) of its cargo workspace, or the `test` command workspace.toml
gives it; into the workspace's one target directory. A service with a `database` gets a fresh
database of its own, `<database>_test_<random>`, on the server `plat migrate` would use
(DATABASE_URL_<SERVICE>, or the workspace's database container), migrated, handed to its tests
as DATABASE_URL and PLAT_TEST_DATABASE_URL, and dropped afterwards. A service whose inputs (its
files, the libraries', its contracts, the toolchain) are unchanged since its tests passed is
reported `cached` and not run again (--force runs it). Exit 1 names each failing service and test.

--contract: no broker: every package a service uses is served by a service; every service's
committed generated code matches proto/; with --against, proto/ breaks nothing since that git
ref; and every rpc of every package a provider serves is answered by its running container
(`plat up` first). The probe sends a request that cannot decode, so a method that exists fails
before its handler runs and nothing changes; a missing one answers UNIMPLEMENTED.
Per edge, each consumer's recorded contract (src/proto/descriptor.bin) must be wire compatible
with what its provider serves (gRPC reflection), and the calls it declares in contracts/*.toml
are replayed against the provider. Each edge's result is recorded with both sides' commits;
--can-deploy SERVICE answers from those records. Exit 1 when a case fails.

--e2e: the command `[workspace.e2e]` names, once every service runs, current and healthy
(`plat up` first), handed PLAT_<SERVICE>_<PORT>_URL for each published port and
PLAT_<SERVICE>_ENV_<KEY> for each `env` value of workspace.toml.

Examples:
  plat test                                   every service's tests (cached when unchanged)
  plat test order-service --force
  plat test --junit tests.xml --json
  plat up && plat test --contract
  plat test --contract --against origin/main --junit contract.xml
  plat test --contract --json | jq '.[] | select(.status == \"failed\")'
  plat up && plat test --e2e
  plat test --contract --can-deploy user-service")]
    Test(TestArgs),

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

    /// Render workspace.toml as a Kubernetes (kustomize) tree, and apply it to a cluster
    #[command(subcommand)]
    Deploy(DeployCommand),

    /// Export workspace.toml as a docker-compose.yml
    #[command(subcommand)]
    Compose(ComposeCommand),

    /// Start or stop only the platform's PostgreSQL container
    ///
    /// Hidden from the command list: `plat up` starts the database with the rest of the
    /// platform; this is for running migrations or a psql session without the services.
    #[command(subcommand, hide = true)]
    Db(DbCommand),

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
    /// Services and libraries to sync (default: all)
    #[arg(value_name = "NAME")]
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
    /// Services and libraries to show (default: all)
    #[arg(value_name = "NAME")]
    pub services: Vec<String>,
    /// Print a JSON array, one object per service or library
    #[arg(long)]
    pub json: bool,
}

/// `plat build` arguments.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Services to build (default: all)
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Say why each image is built again: the files, build arguments or target that changed
    #[arg(long)]
    pub explain: bool,
    /// Refuse to build a checkout that is not at its plat.lock commit or has uncommitted changes
    #[arg(long)]
    pub locked: bool,
    /// Compile cargo services with the release profile, whatever workspace.toml says
    #[arg(long)]
    pub release: bool,
}

/// `plat up` arguments.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Services to start, with what they depend on (default: all)
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Do not build: use the images already on this machine
    #[arg(long, conflicts_with = "watch")]
    pub no_build: bool,
    /// Once up, keep watching the services' code: rebuild and replace a service when it
    /// changes, and show the logs, until Ctrl-C
    #[arg(short, long)]
    pub watch: bool,
    /// Refuse to build a checkout that is not at its plat.lock commit or has uncommitted changes
    #[arg(long)]
    pub locked: bool,
    /// Compile cargo services with the release profile, whatever workspace.toml says
    #[arg(long)]
    pub release: bool,
}

/// `plat down` arguments.
#[derive(Debug, Args)]
pub struct DownArgs {
    /// Also remove the database's volume: its data is lost
    #[arg(long)]
    pub volumes: bool,
}

/// `plat test` arguments.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Services whose tests to run (default: all)
    #[arg(value_name = "SERVICE", conflicts_with_all = ["contract", "e2e"])]
    pub services: Vec<String>,
    /// Run the contract tests instead of the services' own
    #[arg(long)]
    pub contract: bool,
    /// Run the platform's end-to-end tests (`[workspace.e2e]`) against the running platform
    #[arg(long, conflicts_with = "contract")]
    pub e2e: bool,
    /// Run every service's tests, even those cached as passed with the same inputs
    #[arg(long)]
    pub force: bool,
    /// How many services' tests run at once
    #[arg(short, long, value_name = "N", default_value_t = plat::testing::DEFAULT_JOBS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub jobs: usize,
    /// Also check proto/ for breaking changes since this git ref (with --contract)
    #[arg(long, value_name = "REF", requires = "contract")]
    pub against: Option<String>,
    /// Also write the results as a JUnit XML report to FILE
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Which engine generates and compares the contracts
    #[arg(long, value_enum, default_value_t = EngineChoice::Auto, env = "PLAT_PROTO_ENGINE")]
    pub engine: EngineChoice,
    /// Print the results as JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// Run nothing: answer from the recorded contract runs whether SERVICE's version was
    /// verified against the versions of the services beside it (exit 0 yes, 1 no)
    #[arg(long, value_name = "SERVICE", requires = "contract", conflicts_with_all = ["against", "junit"])]
    pub can_deploy: Option<String>,
}

/// `plat logs` arguments.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Services whose logs to show (default: all)
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Keep printing new lines until Ctrl-C
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines of each service
    #[arg(short = 'n', long, value_name = "N")]
    pub tail: Option<u64>,
    /// Show the time the Engine received each line (full date, nanoseconds)
    #[arg(short, long)]
    pub timestamps: bool,
    /// Only lines written since: a duration ago (`10m`, `1h30m`) or an RFC 3339 time
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub since: Option<i64>,
    /// Only lines at this level or more severe (error, warn, info, debug, trace)
    #[arg(long, value_name = "LEVEL", value_parser = parse_level)]
    pub level: Option<plat::logs::Level>,
    /// Only the lines of one request, in every service: its trace id or request id (or the
    /// first 8 or more characters of either)
    #[arg(long, value_name = "ID")]
    pub trace: Option<String>,
    /// Print the lines as the services wrote them (one JSON object per line, for pkg's)
    #[arg(long)]
    pub json: bool,
}

/// `--since`: a duration ago, or an RFC 3339 time, as Unix seconds.
fn parse_since(text: &str) -> Result<i64, String> {
    if let Some(seconds) = plat::logs::unix_seconds(text) {
        return Ok(seconds);
    }
    let ago = plat::manifest::spec::HumanDuration::parse(text)
        .map_err(|_| format!("`{text}` is neither a duration (`10m`, `1h30m`) nor an RFC 3339 time"))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Ok(i64::try_from(now.saturating_sub(ago).as_secs()).unwrap_or(i64::MAX))
}

/// `--level`.
fn parse_level(text: &str) -> Result<plat::logs::Level, String> {
    plat::logs::Level::parse(text).ok_or_else(|| format!("`{text}` is not a level: error, warn, info, debug or trace"))
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Start the workspace's database container (or leave it running) and print its URL
    #[command(after_help = "\
Starts <workspace>-postgres from image plat/postgres:15 (scripts/images/postgres builds it) on
the network <workspace>-net, with its data in the volume <workspace>-postgres-data, published
on 127.0.0.1 at a port Docker picks, and waits until it accepts connections. `plat migrate`
then finds it by its labels, for every service without --database-url or DATABASE_URL_<SERVICE>.

Examples:
  plat db start && plat migrate
  psql \"$(plat db start)\"")]
    Start {
        /// How long to wait for PostgreSQL to accept connections, e.g. `30s`, `2m`
        #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Stop the workspace's database container; its data stays in its volume
    Stop,
    /// Drop services' databases and migrate them again from this checkout's files
    #[command(after_help = "\
For a development database that another branch migrated: applied migrations whose files this
branch does not have block `plat migrate` and `plat up`. Every table and row in the database
is lost. Asks first; --yes does not ask (and is needed where there is nobody to ask).

Examples:
  plat db reset user-service
  plat db reset --yes")]
    Reset(DbResetArgs),
}

/// Arguments of `plat db reset`.
#[derive(Debug, Args)]
pub struct DbResetArgs {
    /// Services whose databases to reset (default: every service with a database)
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Do not ask
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub url: DatabaseUrlArgs,
    #[command(flatten)]
    pub lock: LockTimeoutArgs,
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
exit status is 1 when there is any, 2 when the input is wrong (a file that does not compile, no
.proto file, a buf.yaml buf would refuse). Rules come from buf.yaml's `lint` section (STANDARD
unless it says otherwise); `except`, `ignore` and `ignore_only` apply to both engines.

Examples:
  plat proto lint
  plat proto lint --json | jq '.[].rule'
  plat proto lint --engine builtin  do not use buf even if it is installed")]
    Lint(ProtoLintArgs),

    /// Check proto/ for breaking changes against a git ref (buf breaking, or plat's own checks)
    #[command(after_help = "\
The old files are read from the git object database: no checkout, no network. Rules come from
buf.yaml's `breaking` section (category FILE unless it says otherwise: FILE, PACKAGE, WIRE_JSON,
WIRE); the exit status is 1 when anything breaks, 2 when the input is wrong (a file that does not
compile, no .proto file, a buf.yaml buf would refuse, a ref the repository does not hold).

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
/// Arguments of `plat migrate`: a subcommand, or the arguments of `plat migrate apply`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(subcommand)]
    pub command: Option<MigrateCommand>,
    #[command(flatten)]
    pub apply: MigrateApplyArgs,
}

/// The subcommands of `plat migrate`.
#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Apply pending migrations (what `plat migrate` alone does)
    #[command(after_help = "\
Needed only for a service named like a subcommand (status, new, repair, down, apply).

Examples:
  plat migrate apply
  plat migrate apply status --database-url postgres://postgres@localhost:5432")]
    Apply(MigrateApplyArgs),

    /// Show each service's applied, pending, changed and missing migrations
    #[command(after_help = "\
Reads the history without taking the lock and never creates a database. Exits 1 when a
database cannot be reached, or when a migration is changed, renamed, missing or failed (pending
ones are normal: `plat migrate` applies them).

Examples:
  plat migrate status
  plat migrate status user-service --json | jq '.[0].migrations[] | select(.state != \"applied\")'")]
    Status(MigrateStatusArgs),

    /// Create the next migration file of a service
    #[command(after_help = "\
The file follows the newest existing one: `V<n>__<name>.sql` (Flyway), `<v>_<name>.up.sql` with
a `.down.sql` (sqlx, golang-migrate), or `<v>_<name>.sql`; its version continues theirs (the next
integer, or the UTC time YYYYMMDDHHMMSS after timestamp versions). With no migration yet:
`<YYYYMMDDHHMMSS>_<name>.sql`. Prints the paths created.

Examples:
  plat migrate new user-service create_users
  plat migrate new order-service \"add index on orders.user_id\"")]
    New(MigrateNewArgs),

    /// Record the current checksum of applied migrations whose files changed
    #[command(after_help = "\
Only for a change that does not alter what the migration did (a comment, whitespace, a fixed
typo in a comment): the database is not touched beyond the history table. Also forgets history
rows recorded as failed.

Examples:
  plat migrate status user-service             see which files changed
  plat migrate repair user-service")]
    Repair(MigrateRepairArgs),

    /// Undo applied migrations newer than a version, with their .down.sql files
    #[command(after_help = "\
Newest first, each .down.sql in its own transaction with its history row. Without --yes, lists
what it would undo and exits 1. Refuses when one of them has no .down.sql.

Examples:
  plat migrate down user-service --to 20240101120000
  plat migrate down user-service --to 20240101120000 --yes
  plat migrate down user-service --to 0 --yes  undo every migration")]
    Down(MigrateDownArgs),

    /// Record a pending migration as applied without running it
    #[command(after_help = "\
For a migration whose work is already in the database: a concurrent index that a killed run
built before it could record it, a change made by hand. The history gets the file's checksum,
so a later edit of the file still shows as changed.

Examples:
  plat migrate mark user-service 20240101120000")]
    Mark(MigrateMarkArgs),

    /// Take another tool's migration history over (golang-migrate, goose, Flyway, sqlx)
    #[command(after_help = "\
Records in plat's history, with each file's checksum and without running anything, every
migration that the database's golang-migrate (schema_migrations), goose (goose_db_version),
Flyway (flyway_schema_history) or sqlx (_sqlx_migrations) history says is applied. Only into an
empty plat history, and only when each of those versions has its file here. The other tool's
table is left as it is.

Examples:
  plat migrate import user-service
  plat migrate import user-service --from goose")]
    Import(MigrateImportArgs),
}

/// Where the databases are.
#[derive(Debug, Args)]
pub struct DatabaseUrlArgs {
    /// PostgreSQL URL for the selected services, instead of DATABASE_URL_<SERVICE>; without a
    /// database name in it, each service's `database.name` is used
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

/// How long a migration run waits; each falls back to `[workspace.migrate]`, then its default.
#[derive(Debug, Args)]
pub struct LockTimeoutArgs {
    /// How long to wait for another run's migration lock on a database, e.g. `30s`, `5m`
    /// [default: workspace.migrate.lock_timeout, else 60s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub lock_timeout: Option<Duration>,
    /// How long one statement of a migration may run (PostgreSQL's statement_timeout; `0s`: no
    /// limit) [default: workspace.migrate.statement_timeout, else 1h]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub statement_timeout: Option<Duration>,
    /// How long one statement may wait for a lock another session holds on a table or row
    /// (PostgreSQL's lock_timeout; `0s`: no limit) [default: workspace.migrate.statement_lock_timeout, else 10s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub statement_lock_timeout: Option<Duration>,
}

impl LockTimeoutArgs {
    /// The engine's options: these flags over the workspace's settings.
    pub fn options(&self, workspace: &plat::manifest::Workspace) -> plat::migrate::MigrateOptions {
        let settings = &workspace.migrate;
        plat::migrate::MigrateOptions {
            lock_timeout: self.lock_timeout.unwrap_or(settings.lock_timeout),
            statement_timeout: self.statement_timeout.unwrap_or(settings.statement_timeout),
            statement_lock_timeout: self.statement_lock_timeout.unwrap_or(settings.statement_lock_timeout),
            allow_out_of_order: false,
            stop: plat::migrate::Stop::default(),
        }
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    plat::manifest::spec::HumanDuration::parse(text)
}

/// Arguments of `plat migrate apply`.
#[derive(Debug, Args)]
pub struct MigrateApplyArgs {
    /// Services to migrate (default: every service with a database)
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    #[command(flatten)]
    pub url: DatabaseUrlArgs,
    #[command(flatten)]
    pub lock: LockTimeoutArgs,
    /// Apply pending migrations older than the newest applied one instead of refusing
    #[arg(long)]
    pub allow_out_of_order: bool,
}

/// Arguments of `plat migrate status`.
#[derive(Debug, Args)]
pub struct MigrateStatusArgs {
    /// Services to show (default: every service with a database)
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    #[command(flatten)]
    pub url: DatabaseUrlArgs,
    /// Print a JSON array, one object per service
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `plat migrate new`.
#[derive(Debug, Args)]
pub struct MigrateNewArgs {
    /// The service
    pub service: String,
    /// What the migration does, e.g. `add_email_to_users`
    pub name: String,
}

/// Arguments of `plat migrate repair`.
#[derive(Debug, Args)]
pub struct MigrateRepairArgs {
    /// Services to repair
    #[arg(value_name = "SERVICE", required = true)]
    pub services: Vec<String>,
    #[command(flatten)]
    pub url: DatabaseUrlArgs,
    #[command(flatten)]
    pub lock: LockTimeoutArgs,
}

/// Arguments of `plat migrate import`.
#[derive(Debug, Args)]
pub struct MigrateImportArgs {
    /// The service
    pub service: String,
    /// Whose history, when the database has more than one: golang-migrate, goose, flyway, sqlx
    #[arg(long, value_name = "TOOL", value_parser = parse_tool)]
    pub from: Option<plat::migrate::foreign::Tool>,
    #[command(flatten)]
    pub url: DatabaseUrlArgs,
    #[command(flatten)]
    pub lock: LockTimeoutArgs,
}

fn parse_tool(text: &str) -> Result<plat::migrate::foreign::Tool, String> {
    plat::migrate::foreign::Tool::parse(text)
        .ok_or_else(|| format!("`{text}` is not one of golang-migrate, goose, flyway, sqlx"))
}

/// Arguments of `plat migrate mark`.
#[derive(Debug, Args)]
pub struct MigrateMarkArgs {
    /// The service
    pub service: String,
    /// The version to record as applied
    #[arg(value_name = "VERSION")]
    pub migration: i64,
    #[command(flatten)]
    pub url: DatabaseUrlArgs,
    #[command(flatten)]
    pub lock: LockTimeoutArgs,
}

/// Arguments of `plat migrate down`.
#[derive(Debug, Args)]
pub struct MigrateDownArgs {
    /// The service
    pub service: String,
    /// Keep this version and the ones before it; undo every applied migration after it
    #[arg(long, value_name = "VERSION")]
    pub to: i64,
    /// Undo them; without it, only list them
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub url: DatabaseUrlArgs,
    #[command(flatten)]
    pub lock: LockTimeoutArgs,
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

/// `plat deploy` subcommands.
#[derive(Debug, Subcommand)]
pub enum DeployCommand {
    /// Write the kustomize tree of workspace.toml: base/ and overlays/<env>/
    #[command(after_help = "\
base/ holds a Deployment and a Service per service (readiness probes from `health`, ports from
`ports`, `env` in a ConfigMap, `secrets` and DATABASE_URL from the overlay's Secret, non-root,
resource requests); overlays/<env>/ the namespace, the Secret generated from secrets.env (copy
secrets.env.example), and for `dev` a PostgreSQL. Images are <image>:<commit>, the HEAD of each
service's checkout (`<commit>-dirty` with uncommitted changes); ready images (`nats:2`) as they
are. Files plat wrote before and no longer renders are removed; other files are left alone.

Examples:
  plat deploy render                       deploy/k8s/base and deploy/k8s/overlays/dev
  plat deploy render --env prod            managed databases: no PostgreSQL in the overlay
  plat deploy render --tag dev             images tagged dev, as `plat build` tags them
  kubectl kustomize deploy/k8s/overlays/dev

Documentation: docs/deploy.md")]
    Render(DeployRenderArgs),

    /// Apply a rendered overlay with `kubectl apply -k`, saying first what it changes
    #[command(after_help = "\
Checks that kubectl knows the context, shows `kubectl diff -k` of the overlay (what the cluster
would change), then runs `kubectl apply -k`. With --dry-run the server checks the change
(`kubectl apply --dry-run=server -k`) and nothing changes. Render first: apply uses the tree as
it is on disk, with its secrets.env.

Examples:
  plat deploy apply --context kind-dev --dry-run
  plat deploy apply --context kind-dev
  plat deploy apply --context prod --env prod

Documentation: docs/deploy.md")]
    Apply(DeployApplyArgs),
}

/// Arguments of `plat deploy render`.
#[derive(Debug, Args)]
pub struct DeployRenderArgs {
    /// The overlay to write: `dev` runs PostgreSQL in the cluster, any other takes managed
    /// databases through the Secret
    #[arg(long, value_name = "NAME", default_value = "dev")]
    pub env: String,
    /// Directory to write the tree to (default: deploy/k8s under the workspace root)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Tag every image plat builds with TAG instead of its checkout's commit
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,
}

/// Arguments of `plat deploy apply`.
#[derive(Debug, Args)]
pub struct DeployApplyArgs {
    /// The kubectl context to apply to (`kubectl config get-contexts` lists them)
    #[arg(long, value_name = "CTX")]
    pub context: String,
    /// The overlay to apply
    #[arg(long, value_name = "NAME", default_value = "dev")]
    pub env: String,
    /// The tree's directory (default: deploy/k8s under the workspace root)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Show what would change and have the server check it; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// `plat compose` subcommands.
#[derive(Debug, Subcommand)]
pub enum ComposeCommand {
    /// Write a docker-compose.yml that runs what workspace.toml describes
    #[command(after_help = "\
The services on the images `plat build` made (<workspace>/<service>:dev unless `image` says
otherwise) and the ready images as they are, their `env` (each of `secrets` read
from the environment or .env instead), ports published as `publish` says (moved by
<SERVICE>_<PORT>_PORT), health checks where the image can run one (a `cmd` check), the database
with its volume, published on 127.0.0.1:${POSTGRES_PORT:-5432} for `plat migrate`.

Examples:
  plat build && plat compose export
  docker-compose up -d postgres
  DATABASE_URL_USER_SERVICE=postgres://postgres@127.0.0.1:5432/user_service plat migrate user-service
  JWT_SECRET=... docker-compose up -d

Documentation: docs/deploy.md")]
    Export(ComposeExportArgs),
}

/// Arguments of `plat compose export`.
#[derive(Debug, Args)]
pub struct ComposeExportArgs {
    /// File to write; `-` for stdout (default: docker-compose.yml in the workspace root)
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}
