//! `plat migrate` over TLS, with libpq's `sslmode`s, against real PostgreSQL servers made here:
//! a throwaway cluster per test (initdb and pg_ctl of Debian's postgresql package, which
//! scripts/setup installs), with a CA and server certificate made with rcgen, `hostssl` lines
//! only (plain connections refused) and SCRAM passwords, so that channel binding is exercised.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};

use crate::migrate::{MigrateContext, query};

/// The password of the clusters' `postgres` user (SCRAM, so that channel binding can be used).
const PASSWORD: &str = "tls-test-secret";

/// The newest installed PostgreSQL server's binaries, as scripts/postgres finds them. Missing is
/// a failure, never a skip: scripts/setup installs them.
fn server_binaries() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "no /usr/lib/postgresql/*/bin/initdb: the TLS tests make PostgreSQL clusters of their own; run \
             scripts/setup (or apt-get install postgresql)"
        ),
    }
}

/// A certificate authority: its certificate as a PEM file, and what it signs with.
struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pem_file: PathBuf,
}

impl Authority {
    fn new(dir: &Path, name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let pem_file = dir.join(format!("{name}.pem"));
        std::fs::write(&pem_file, issuer.pem()).unwrap();
        Authority { issuer, pem_file }
    }
}

/// A PostgreSQL cluster of this test's own on a free loopback port, stopped when dropped.
struct Server {
    _dir: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
    /// The authority that signed the server's certificate (when TLS is on).
    ca: Option<Authority>,
}

/// Runs `command` as the cluster's owner: PostgreSQL refuses to run as root, so as root, as the
/// `postgres` user the Debian package creates.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

#[track_caller]
fn run_ok(command: &mut Command) {
    let output = command.stdin(Stdio::null()).output().expect("runs");
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Gives `path` to the `postgres` user when running as root.
fn give_to_owner(path: &Path) {
    if is_root() {
        run_ok(Command::new("chown").args(["-R", "postgres:postgres"]).arg(path));
    }
}

impl Server {
    /// A cluster with TLS on, a certificate for `localhost` only, and `hostssl` lines only.
    fn with_tls() -> Server {
        Server::start(true)
    }

    /// A cluster without TLS, accepting plain connections.
    fn without_tls() -> Server {
        Server::start(false)
    }

    fn start(tls: bool) -> Server {
        let bin = server_binaries();
        let dir = tempfile::Builder::new().prefix("plat-tls-pg-").tempdir().unwrap();
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        give_to_owner(dir.path());
        run_ok(
            as_owner(&bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"])
                .args(["--encoding=UTF8", "--locale=C.UTF-8"])
                .arg(format!("--pwfile={}", pwfile.display())),
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\nfsync = off\n",
            data.display()
        );
        let hba = if tls {
            let ca = Authority::new(dir.path(), "plat-test-ca");
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
            params.distinguished_name.push(DnType::CommonName, "localhost");
            let cert = params.signed_by(&key, &*ca.issuer).unwrap();
            std::fs::write(data.join("server.crt"), cert.pem()).unwrap();
            std::fs::write(data.join("server.key"), key.serialize_pem()).unwrap();
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
            (Some(ca), "hostssl all all 127.0.0.1/32 scram-sha-256\n")
        } else {
            (None, "host all all 127.0.0.1/32 scram-sha-256\n")
        };
        let (ca, host_line) = hba;
        std::fs::write(data.join("pg_hba.conf"), format!("local all all trust\n{host_line}")).unwrap();
        let mut postgresql_conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        postgresql_conf.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), postgresql_conf).unwrap();
        give_to_owner(&data);
        #[cfg(unix)]
        if tls {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(data.join("server.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let server = Server { _dir: dir, data, bin, port, ca };
        run_ok(
            as_owner(&server.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&server.data)
                .arg("-l")
                .arg(server.data.join("server.log"))
                .args(["-w", "-t", "60", "start"]),
        );
        server
    }

    /// `postgres://postgres:PASSWORD@HOST:PORT/DATABASE?QUERY`.
    fn url(&self, host: &str, database: &str, query: &str) -> String {
        format!("postgres://postgres:{PASSWORD}@{host}:{}/{database}?{query}", self.port)
    }

    /// The authority's certificate file.
    fn ca_file(&self) -> String {
        self.ca.as_ref().expect("a TLS server").pem_file.to_string_lossy().into_owned()
    }

    /// Rows of `sql` in `database`, over the cluster's Unix socket (trusted, no TLS needed).
    fn query(&self, database: &str, sql: &str) -> Vec<Vec<Option<String>>> {
        query(&format!("host={} port={} user=postgres dbname={database}", self.data.display(), self.port), sql)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = as_owner(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .stdin(Stdio::null())
            .output();
    }
}

/// A workspace with one service and one migration.
fn workspace() -> MigrateContext {
    let context = MigrateContext::new(&[("user-service", &[])]);
    context.write("user-service", "1_users.sql", "CREATE TABLE users (id bigint PRIMARY KEY);\n");
    context
}

/// `plat migrate --database-url URL` with `env`.
fn migrate(context: &MigrateContext, url: &str, env: &[(&str, &str)]) -> crate::context::Run {
    context.run(&["migrate", "--database-url", url], env)
}

#[test]
fn require_encrypts_and_binds_the_password_exchange_to_the_session() {
    let server = Server::with_tls();
    let context = workspace();
    // channel_binding=require: SCRAM-SHA-256-PLUS with the certificate's hash, or no connection.
    let url = server.url("127.0.0.1", "required", "sslmode=require&channel_binding=require");
    let run = migrate(&context, &url, &[]).expect_code(0);
    assert!(run.stderr.contains("Applied user-service 1_users.sql"), "{}", run.stderr);
    assert_eq!(server.query("required", "SELECT version FROM plat_migrations"), [[Some("1".to_owned())]]);

    // PGSSLMODE says the same when the URL does not.
    context.write("user-service", "2_more.sql", "CREATE TABLE more (id int);\n");
    let url = server.url("127.0.0.1", "required", "channel_binding=require");
    migrate(&context, &url, &[("PGSSLMODE", "require")]).expect_code(0);
    assert_eq!(server.query("required", "SELECT to_regclass('more') IS NOT NULL"), [[Some("t".to_owned())]]);
}

#[test]
fn verify_full_checks_the_authority_and_the_host_name() {
    let server = Server::with_tls();
    let context = workspace();
    let ca = server.ca_file();

    let url = server.url("localhost", "verified", &format!("sslmode=verify-full&sslrootcert={ca}"));
    let run = migrate(&context, &url, &[]).expect_code(0);
    assert!(run.stderr.contains("Applied user-service 1_users.sql"), "{}", run.stderr);

    // A certificate signed by another authority: the file trusted is named, and what to do.
    let other = Authority::new(server._dir.path(), "other-ca");
    let other_file = other.pem_file.to_string_lossy().into_owned();
    let url = server.url("localhost", "verified", &format!("sslmode=verify-full&sslrootcert={other_file}"));
    let run = migrate(&context, &url, &[]).expect_code(1);
    assert!(
        run.stderr.contains(&format!(
            "the server's certificate is not signed by an authority in the root certificate file {other_file}"
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("sslrootcert=FILE"), "{}", run.stderr);

    // The right authority, but by an address the certificate does not hold: both are named.
    let url = server.url("127.0.0.1", "verified", "");
    let run = migrate(&context, &url, &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &ca)]).expect_code(1);
    assert!(
        run.stderr.contains("the server's certificate is not valid for the host `127.0.0.1` (it is for localhost)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("sslmode=verify-ca"), "{}", run.stderr);
    assert!(!run.stderr.contains("is the server running"), "TLS says what to do itself: {}", run.stderr);

    // verify-ca checks the authority only: the address is fine, another authority is not.
    context.write("user-service", "2_more.sql", "CREATE TABLE more (id int);\n");
    let url = server.url("127.0.0.1", "verified", &format!("sslmode=verify-ca&sslrootcert={ca}"));
    migrate(&context, &url, &[]).expect_code(0);
    assert_eq!(server.query("verified", "SELECT count(*) FROM plat_migrations"), [[Some("2".to_owned())]]);
    let url = server.url("127.0.0.1", "verified", &format!("sslmode=verify-ca&sslrootcert={other_file}"));
    migrate(&context, &url, &[]).expect_code(1);

    // Without a root certificate file verify-full cannot check anything, and says what it needs.
    let url = server.url("localhost", "verified", "sslmode=verify-full");
    let run = migrate(&context, &url, &[]).expect_code(1);
    assert!(run.stderr.contains(".postgresql/root.crt does not exist"), "{}", run.stderr);
}

#[test]
fn require_checks_the_authority_when_the_default_root_file_exists() {
    let server = Server::with_tls();
    let context = workspace();
    // libpq's rule: with ~/.postgresql/root.crt present, require verifies the chain.
    let home = tempfile::tempdir().unwrap();
    let home_var = home.path().to_string_lossy().into_owned();
    let root = home.path().join(".postgresql/root.crt");
    std::fs::create_dir_all(root.parent().unwrap()).unwrap();
    let other = Authority::new(home.path(), "other-ca");
    std::fs::copy(&other.pem_file, &root).unwrap();
    let url = server.url("127.0.0.1", "by_default", "sslmode=require");
    let run = migrate(&context, &url, &[("HOME", &home_var)]).expect_code(1);
    assert!(run.stderr.contains(&format!("root certificate file {}", root.display())), "{}", run.stderr);
    std::fs::copy(server.ca_file(), &root).unwrap();
    migrate(&context, &url, &[("HOME", &home_var)]).expect_code(0);
}

#[test]
fn prefer_uses_tls_when_offered_and_plain_otherwise() {
    let tls = Server::with_tls();
    let plain = Server::without_tls();
    let context = workspace();
    // sslmode=prefer is the default: the hostssl-only server takes it, so it was TLS.
    migrate(&context, &tls.url("127.0.0.1", "preferred", ""), &[]).expect_code(0);
    assert_eq!(tls.query("preferred", "SELECT count(*) FROM plat_migrations"), [[Some("1".to_owned())]]);
    migrate(&context, &plain.url("127.0.0.1", "preferred", "sslmode=prefer"), &[]).expect_code(0);
    assert_eq!(plain.query("preferred", "SELECT count(*) FROM plat_migrations"), [[Some("1".to_owned())]]);

    // require against the server without TLS: said so, and how to fix it.
    let run = migrate(&context, &plain.url("127.0.0.1", "preferred", "sslmode=require"), &[]).expect_code(1);
    assert!(
        run.stderr.contains("the server does not accept TLS connections, and sslmode=require requires TLS"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("ssl = on"), "{}", run.stderr);
}

#[test]
fn disable_gets_the_servers_refusal_and_allow_retries_with_tls() {
    let server = Server::with_tls();
    let context = workspace();
    let run = migrate(&context, &server.url("127.0.0.1", "allowed", "sslmode=disable"), &[]).expect_code(1);
    assert!(run.stderr.contains("no pg_hba.conf entry for host \"127.0.0.1\""), "{}", run.stderr);
    assert!(run.stderr.contains("no encryption"), "{}", run.stderr);
    assert!(run.stderr.contains("try sslmode=require"), "{}", run.stderr);
    assert_eq!(
        server.query("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'allowed'"),
        [[Some("0".to_owned())]]
    );

    migrate(&context, &server.url("127.0.0.1", "allowed", "sslmode=allow"), &[]).expect_code(0);
    assert_eq!(server.query("allowed", "SELECT count(*) FROM plat_migrations"), [[Some("1".to_owned())]]);
}

#[test]
fn ctrl_c_cancels_the_running_statement_over_tls() {
    let server = Server::with_tls();
    let context = workspace();
    context.write("user-service", "2_slow.sql", "SELECT pg_sleep(60);\n");
    let url = server.url("localhost", "cancelled", &format!("sslmode=verify-full&sslrootcert={}", server.ca_file()));
    let child = context
        .plat()
        .args(["migrate", "--database-url", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The cancel request goes over a new connection, verified as the session's was.
    let sleeping = || {
        server.query(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE datname = 'cancelled' AND query LIKE '%pg_sleep(60)%' \
             AND application_name LIKE 'plat migrate%'",
        )[0][0]
            .clone()
            .unwrap()
    };
    let started = std::time::Instant::now();
    while sleeping() != "1" {
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "the slow statement never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("2_slow.sql: cancelled: plat asked the server to stop it (SQLSTATE 57014)"), "{stderr}");
    assert_eq!(sleeping(), "0");
}
