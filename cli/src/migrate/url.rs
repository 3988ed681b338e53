//! Where a service's database is: its URL, from the command line, the environment or the
//! workspace's database container, and how to show it without its password.
//!
//! Architecture invariant: [`resolve`] is the one place that decides a service's database URL.
//! It never talks to Docker itself: the caller finds the container once per run
//! ([`crate::docker::find_database_container`]) and hands it over in [`UrlSources`]. No URL text
//! is ever shown as given: [`DatabaseTarget::display`] rebuilds it from the parsed parts with
//! the password as `****`.

use std::fmt::Write as _;

use tokio_postgres::Config;
use tokio_postgres::config::Host;

use super::tls::{self, TlsSettings};
use crate::docker::DatabaseContainer;
use crate::manifest::Service;

/// Where URLs come from, highest priority first.
pub struct UrlSources<'a> {
    /// `--database-url`: applies to every selected service.
    pub explicit: Option<&'a str>,
    /// Reads an environment variable (`std::env::var` in the CLI, a map in tests).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The workspace's running database container, for services that neither of the above
    /// names: each gets its own database in it, as the image's `postgres` superuser.
    pub container: Option<&'a DatabaseContainer>,
    /// How to reach that container from here (directly, or through the Engine); without it,
    /// its port published on 127.0.0.1.
    pub container_dial: Option<Dial>,
}

impl UrlSources<'_> {
    /// Whether `--database-url` or the environment names `service`'s database, so that the
    /// container is not needed for it.
    pub fn given(&self, service: &Service) -> bool {
        self.explicit.is_some() || (self.env)(&env_var(&service.name)).is_some_and(|url| !url.trim().is_empty())
    }
}

/// Where a URL came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlOrigin {
    /// `--database-url`.
    Flag,
    /// An environment variable, by name.
    Env(String),
    /// The workspace's database container, by name.
    Container(String),
}

impl std::fmt::Display for UrlOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UrlOrigin::Flag => f.write_str("--database-url"),
            UrlOrigin::Env(name) => f.write_str(name),
            UrlOrigin::Container(name) => write!(f, "container {name}"),
        }
    }
}

/// A connection being opened by a [`Dial`].
pub type Dialing = std::pin::Pin<Box<dyn Future<Output = std::io::Result<crate::docker::relay::Conn>> + Send>>;

/// Opens a connection to a database server plat cannot reach by its URL's host and port: the
/// workspace's database container, reached through the Engine (`docker::relay`).
#[derive(Clone)]
pub struct Dial(pub std::sync::Arc<dyn Fn() -> Dialing + Send + Sync>);

impl std::fmt::Debug for Dial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dial")
    }
}

/// The database one service migrates: connection settings and its name.
#[derive(Clone)]
pub struct DatabaseTarget {
    /// The service.
    pub service: String,
    /// Connection settings, with the database name set.
    pub config: Config,
    /// The database: the URL's when it names one, else the manifest's `database.name`.
    pub database: String,
    /// Where the URL came from.
    pub origin: UrlOrigin,
    /// Whether the URL itself named the database.
    pub named_in_url: bool,
    /// How to open a connection, when not to the URL's host and port.
    pub dial: Option<Dial>,
    /// sslmode and the trusted roots.
    pub tls: TlsSettings,
}

impl std::fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the Config: its Debug shows the password.
        f.debug_struct("DatabaseTarget")
            .field("service", &self.service)
            .field("url", &self.display())
            .field("origin", &self.origin)
            .finish()
    }
}

impl DatabaseTarget {
    /// The URL with the password masked: `postgres://app:****@db:5432/user_service`.
    pub fn display(&self) -> String {
        display(&self.config)
    }

    /// The same server, `dbname` replaced: for the maintenance database.
    pub fn with_database(&self, database: &str) -> Config {
        let mut config = self.config.clone();
        config.dbname(database);
        config
    }
}

/// Why no usable URL was found.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// Nothing names the service's database, and the workspace's database container does not
    /// run (`plat up` or `plat db start` starts it).
    #[error(
        "no database URL for {service}: pass --database-url, set {env}, or start the platform's database with \
         `plat db start`"
    )]
    Missing {
        /// The service.
        service: String,
        /// The environment variable that would name it.
        env: String,
    },
    /// The workspace's database container runs, but no port of this machine leads to it.
    #[error(
        "no database URL for {service}: container {container} publishes no port {} on 127.0.0.1",
        crate::docker::POSTGRES_PORT
    )]
    NotPublished {
        /// The service.
        service: String,
        /// The container.
        container: String,
    },
    /// The URL does not parse. The text is not repeated: it may hold a password.
    #[error("the database URL for {service} from {origin} is not valid: {reason}")]
    Invalid {
        /// The service.
        service: String,
        /// Where the URL came from.
        origin: UrlOrigin,
        /// What the parser said.
        reason: String,
    },
    /// The service has no `database` in workspace.toml.
    #[error("{0} has no database in workspace.toml")]
    NoDatabase(String),
}

/// The environment variable holding a service's URL: `DATABASE_URL_USER_SERVICE`.
pub fn env_var(service: &str) -> String {
    format!("DATABASE_URL_{}", service.to_ascii_uppercase().replace('-', "_"))
}

/// The database `service` migrates, from the first source that has a URL for it.
pub fn resolve(service: &Service, sources: &UrlSources<'_>) -> Result<DatabaseTarget, UrlError> {
    let database = service.database.as_ref().ok_or_else(|| UrlError::NoDatabase(service.name.clone()))?;
    let env = env_var(&service.name);
    let (text, origin) = match (sources.explicit, (sources.env)(&env), sources.container) {
        (Some(url), _, _) => (url.to_owned(), UrlOrigin::Flag),
        (None, Some(url), _) if !url.trim().is_empty() => (url, UrlOrigin::Env(env)),
        (None, _, Some(container)) => {
            return in_container(service, &database.name, container, sources.container_dial.clone());
        }
        _ => return Err(UrlError::Missing { service: service.name.clone(), env }),
    };
    // tokio-postgres knows neither verify-ca/verify-full/allow nor sslrootcert: plat's TLS does.
    let (text, tls_params) = tls::split_params(&text);
    let mut config: Config = text.parse().map_err(|error: tokio_postgres::Error| UrlError::Invalid {
        service: service.name.clone(),
        origin: origin.clone(),
        reason: error.to_string(),
    })?;
    let named_in_url = config.get_dbname().is_some_and(|name| !name.is_empty());
    let database = if named_in_url { config.get_dbname().expect("named").to_owned() } else { database.name.clone() };
    config.dbname(&database);
    let invalid = |reason| UrlError::Invalid { service: service.name.clone(), origin: origin.clone(), reason };
    libpq_defaults(&mut config, sources.env).map_err(invalid)?;
    let tls = TlsSettings::resolve(&tls_params, sources.env).map_err(invalid)?;
    config.ssl_mode(tls.mode.wire());
    Ok(DatabaseTarget { service: service.name.clone(), config, database, origin, named_in_url, dial: None, tls })
}

/// What libpq would take from the environment and `~/.pgpass` for what the URL leaves out:
/// `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGCONNECT_TIMEOUT`, then the password file
/// (`PGPASSFILE`, else `~/.pgpass`); `PGSSLMODE` and `PGSSLROOTCERT` are [`TlsSettings::resolve`]'s. `PGDATABASE` is not read: each service has a
/// database of its own, named by the URL or the manifest. Only for URLs the user gave: the
/// workspace's container has its own user and trusts it.
fn libpq_defaults(config: &mut Config, env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
    let env = |name: &str| env(name).filter(|value| !value.is_empty());
    if config.get_hosts().is_empty() {
        for host in env("PGHOST").as_deref().unwrap_or("localhost").split(',') {
            config.host(host);
        }
    }
    if config.get_ports().is_empty()
        && let Some(port) = env("PGPORT")
    {
        for port in port.split(',') {
            config.port(port.trim().parse().map_err(|_| format!("PGPORT `{port}` is not a port number"))?);
        }
    }
    if config.get_user().is_none()
        && let Some(user) = env("PGUSER")
    {
        config.user(user);
    }
    if config.get_connect_timeout().is_none()
        && let Some(seconds) = env("PGCONNECT_TIMEOUT")
    {
        let seconds: u64 =
            seconds.trim().parse().map_err(|_| format!("PGCONNECT_TIMEOUT `{seconds}` is not a number of seconds"))?;
        if seconds > 0 {
            config.connect_timeout(std::time::Duration::from_secs(seconds));
        }
    }
    if config.get_password().is_none() {
        if let Some(password) = env("PGPASSWORD") {
            config.password(password);
        } else if let Some(password) = pgpass_password(config, &env) {
            config.password(password);
        }
    }
    Ok(())
}

/// The password for `config`'s first host, port, database and user in the password file, as
/// libpq reads it: `host:port:database:user:password` lines, `*` matching anything, `\:` and
/// `\\` escaped, `#` comments; a file others may read is ignored, as libpq ignores it.
fn pgpass_password(config: &Config, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let path = match env("PGPASSFILE") {
        Some(path) => std::path::PathBuf::from(path),
        None => std::path::PathBuf::from(env("HOME")?).join(".pgpass"),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).ok()?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!("ignoring password file {}: others may read it (chmod 0600 it)", path.display());
            return None;
        }
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let host = match config.get_hosts().first()? {
        Host::Tcp(name) => name.clone(),
        #[cfg(unix)]
        Host::Unix(_) => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432).to_string();
    let database = config.get_dbname().unwrap_or_default().to_owned();
    let user = config.get_user().map(str::to_owned).or_else(|| env("USER")).unwrap_or_default();
    let wanted = [host.as_str(), port.as_str(), database.as_str(), user.as_str()];
    text.lines().filter(|line| !line.trim_start().starts_with('#')).find_map(|line| {
        let fields = pgpass_fields(line);
        let [h, p, d, u, password] = fields.as_slice() else { return None };
        let matches =
            [h, p, d, u].iter().zip(wanted).all(|(field, want)| field.as_str() == "*" || field.as_str() == want);
        matches.then(|| password.clone())
    })
}

/// A password file line split at unescaped `:`, with `\:` and `\\` unescaped.
fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("one field").push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

/// `postgres://postgres@postgres:5432/<database.name>` reached through `dial` (the container on
/// the workspace network, as the services reach it), or without one
/// `postgres://postgres@127.0.0.1:<published port>/<database.name>`: the image trusts clients,
/// and the port is published on loopback only (docs/images.md).
fn in_container(
    service: &Service,
    database: &str,
    container: &DatabaseContainer,
    dial: Option<Dial>,
) -> Result<DatabaseTarget, UrlError> {
    let mut config = Config::new();
    match &dial {
        Some(_) => config.host(crate::docker::label::POSTGRES).port(crate::docker::POSTGRES_PORT),
        None => {
            let port = container.port.ok_or_else(|| UrlError::NotPublished {
                service: service.name.clone(),
                container: container.name.clone(),
            })?;
            config.host("127.0.0.1").port(port)
        }
    };
    // The image speaks no TLS, and the connection stays on this machine or the workspace network.
    config.user("postgres").dbname(database).ssl_mode(tokio_postgres::config::SslMode::Disable);
    Ok(DatabaseTarget {
        service: service.name.clone(),
        config,
        database: database.to_owned(),
        origin: UrlOrigin::Container(container.name.clone()),
        named_in_url: false,
        dial,
        tls: TlsSettings::disabled(),
    })
}

/// A URL rebuilt from `config`, the password as `****`.
pub fn display(config: &Config) -> String {
    let mut out = String::from("postgres://");
    if let Some(user) = config.get_user() {
        out.push_str(&encode(user));
        if config.get_password().is_some() {
            out.push_str(":****");
        }
        out.push('@');
    }
    let ports = config.get_ports();
    for (index, host) in config.get_hosts().iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        match host {
            Host::Tcp(name) if name.contains(':') => {
                let _ = write!(out, "[{name}]");
            }
            Host::Tcp(name) => out.push_str(name),
            #[cfg(unix)]
            Host::Unix(path) => out.push_str(&encode(&path.to_string_lossy())),
        }
        let port = ports.get(index).or(ports.first());
        if let Some(port) = port {
            let _ = write!(out, ":{port}");
        }
    }
    if let Some(database) = config.get_dbname() {
        out.push('/');
        out.push_str(&encode(database));
    }
    out
}

/// Percent-encodes what would break a URL's user, host or path part.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Database, DatabaseEngine, RelPath};

    fn service(name: &str) -> Service {
        let text = format!("[workspace]\nname = \"p\"\n[services.{name}]\ndatabase = {{ engine = \"postgres\" }}\n");
        let workspace = crate::manifest::load(std::path::Path::new("/w/workspace.toml"), &text).unwrap();
        let service = workspace.services[0].clone();
        assert_eq!(
            service.database,
            Some(Database {
                engine: DatabaseEngine::Postgres,
                name: name.replace('-', "_"),
                migrations: RelPath::new("migrations").unwrap()
            })
        );
        service
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_flag_wins_then_the_environment() {
        let env = |name: &str| (name == "DATABASE_URL_USER_SERVICE").then(|| "postgres://env@h/envdb".to_owned());
        let user = service("user-service");
        let target = resolve(
            &user,
            &UrlSources { explicit: Some("postgres://flag@h"), env: &env, container: None, container_dial: None },
        )
        .unwrap();
        assert_eq!(
            (target.origin, target.database.as_str(), target.named_in_url),
            (UrlOrigin::Flag, "user_service", false)
        );
        let target =
            resolve(&user, &UrlSources { explicit: None, env: &env, container: None, container_dial: None }).unwrap();
        assert_eq!(target.origin, UrlOrigin::Env("DATABASE_URL_USER_SERVICE".into()));
        assert_eq!((target.database.as_str(), target.named_in_url), ("envdb", true));
    }

    #[test]
    fn no_url_names_the_variable() {
        let error = resolve(
            &service("user-service"),
            &UrlSources { explicit: None, env: &no_env, container: None, container_dial: None },
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "no database URL for user-service: pass --database-url, set DATABASE_URL_USER_SERVICE, or start the \
             platform's database with `plat db start`"
        );
    }

    #[test]
    fn the_container_comes_last() {
        let container = DatabaseContainer {
            id: "c0ffee".into(),
            name: "p-postgres".into(),
            port: Some(32768),
            address: None,
            checkout: None,
            root: None,
        };
        let env = |name: &str| (name == "DATABASE_URL_USER_SERVICE").then(|| "postgres://env@h/envdb".to_owned());
        let (user, order) = (service("user-service"), service("order-service"));
        let sources = UrlSources { explicit: None, env: &env, container: Some(&container), container_dial: None };
        assert!(sources.given(&user) && !sources.given(&order));
        assert_eq!(resolve(&user, &sources).unwrap().origin, UrlOrigin::Env("DATABASE_URL_USER_SERVICE".into()));
        let target = resolve(&order, &sources).unwrap();
        assert_eq!(target.origin.to_string(), "container p-postgres");
        assert_eq!(target.display(), "postgres://postgres@127.0.0.1:32768/order_service");
        assert_eq!((target.database.as_str(), target.named_in_url), ("order_service", false));
        let flag = UrlSources {
            explicit: Some("postgres://flag@h"),
            env: &no_env,
            container: Some(&container),
            container_dial: None,
        };
        assert_eq!(resolve(&order, &flag).unwrap().origin, UrlOrigin::Flag);

        let unpublished = DatabaseContainer { port: None, ..container.clone() };
        let sources = UrlSources { explicit: None, env: &no_env, container: Some(&unpublished), container_dial: None };
        assert_eq!(
            resolve(&order, &sources).unwrap_err().to_string(),
            "no database URL for order-service: container p-postgres publishes no port 5432 on 127.0.0.1"
        );
    }

    #[test]
    fn the_environment_fills_what_the_url_leaves_out() {
        let dir = tempfile::tempdir().unwrap();
        let pgpass = dir.path().join("pgpass");
        std::fs::write(
            &pgpass,
            "# comment\nother:5432:*:app:wrong\ndb.internal:6432:orders:app:from\\:file\n*:*:*:*:fallback\n",
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let pgpass_path = pgpass.to_string_lossy().into_owned();
        let resolve_with = |url: &str, vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            let env = move |name: &str| vars.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
            resolve(
                &service("orders"),
                &UrlSources { explicit: Some(url), env: &env, container: None, container_dial: None },
            )
            .unwrap()
        };
        // PG* variables for what the URL lacks; the URL wins where it speaks.
        let target = resolve_with(
            "postgres:///orders",
            &[
                ("PGHOST", "db.internal"),
                ("PGPORT", "6432"),
                ("PGUSER", "app"),
                ("PGPASSWORD", "s3cr"),
                ("PGCONNECT_TIMEOUT", "3"),
            ],
        );
        assert_eq!(target.display(), "postgres://app:****@db.internal:6432/orders");
        assert_eq!(target.config.get_password(), Some(&b"s3cr"[..]));
        assert_eq!(target.config.get_connect_timeout(), Some(&std::time::Duration::from_secs(3)));
        let target = resolve_with("postgres://me@h:1/orders", &[("PGHOST", "elsewhere"), ("PGUSER", "app")]);
        assert_eq!(target.display(), "postgres://me@h:1/orders");
        // The password file: the first matching line, escapes undone.
        let target = resolve_with("postgres://app@db.internal:6432/orders", &[("PGPASSFILE", &pgpass_path)]);
        assert_eq!(target.config.get_password(), Some(&b"from:file"[..]));
        let target = resolve_with("postgres://app@db.internal:6432/users", &[("PGPASSFILE", &pgpass_path)]);
        assert_eq!(target.config.get_password(), Some(&b"fallback"[..]));
        let target = resolve_with(
            "postgres://app@db.internal:6432/orders",
            &[("PGPASSFILE", &pgpass_path), ("PGPASSWORD", "env")],
        );
        assert_eq!(target.config.get_password(), Some(&b"env"[..]), "PGPASSWORD comes before the file");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
            let target = resolve_with("postgres://app@db.internal:6432/orders", &[("PGPASSFILE", &pgpass_path)]);
            assert_eq!(target.config.get_password(), None, "a file others can read is ignored, as libpq does");
        }
        // PGSSLMODE only when the URL says nothing of it; all of libpq's modes, in both.
        let target = resolve_with("postgres://app@h/orders", &[("PGSSLMODE", "require")]);
        assert_eq!(target.config.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
        let target = resolve_with("postgres://app@h/orders?sslmode=disable", &[("PGSSLMODE", "require")]);
        assert_eq!(target.config.get_ssl_mode(), tokio_postgres::config::SslMode::Disable);
        let target = resolve_with("postgres://app@h/orders?sslmode=verify-full&sslrootcert=/ca.pem", &[]);
        assert_eq!(
            (target.tls.mode, target.config.get_ssl_mode()),
            (tls::SslMode::VerifyFull, tokio_postgres::config::SslMode::Require)
        );
        assert_eq!(target.tls.root_cert, tls::RootCert::File("/ca.pem".into()));
        let target = resolve_with("postgres://app@h/orders", &[("PGSSLMODE", "verify-ca")]);
        assert_eq!(target.tls.mode, tls::SslMode::VerifyCa);
    }

    #[test]
    fn passwords_never_show() {
        let secret = "s3cr%40t";
        for url in [
            format!("postgres://app:{secret}@db.internal:6432/orders"),
            format!("postgresql://app:{secret}@db.internal/orders?sslmode=disable"),
            format!("host=db.internal user=app password={secret} dbname=orders"),
            format!("postgres://app@db.internal/orders?password={secret}"),
        ] {
            let target = resolve(
                &service("orders"),
                &UrlSources { explicit: Some(&url), env: &no_env, container: None, container_dial: None },
            )
            .unwrap();
            let shown = format!("{} {target:?}", target.display());
            assert!(!shown.contains("s3cr"), "{shown}");
            assert!(shown.contains("postgres://app:****@db.internal"), "{shown}");
        }
        let error = resolve(
            &service("orders"),
            &UrlSources {
                explicit: Some("postgres://app:s3cr@h:notaport/x"),
                env: &no_env,
                container: None,
                container_dial: None,
            },
        );
        assert!(!error.unwrap_err().to_string().contains("s3cr"));
    }

    #[test]
    fn displays_every_part() {
        let config: Config = "postgres://u@[::1]:5433,other/db%20name".parse().unwrap();
        assert_eq!(display(&config), "postgres://u@[::1]:5433,other:5432/db%20name");
    }
}
