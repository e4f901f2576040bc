//! A real registry for the tests: Debian's `docker-registry` (distribution 2.8) on a
//! free 127.0.0.1 port with its storage in a temp dir, stopped when dropped.
#![allow(dead_code)]
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

pub struct Registry {
    /// `127.0.0.1:PORT`
    pub host: String,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Registry {
    /// A registry without authentication.
    pub fn start() -> Registry {
        Self::start_with(None)
    }

    /// A registry that wants Basic credentials from this htpasswd (bcrypt) file.
    pub fn start_with(htpasswd: Option<&Path>) -> Registry {
        let auth = htpasswd
            .map(|p| {
                format!(
                    "auth:\n  htpasswd:\n    realm: unionctl-test\n    path: {}\n",
                    p.display()
                )
            })
            .unwrap_or_default();
        Self::start_custom(&auth, None)
    }

    /// A registry with this `auth:` section (YAML) and, given (cert, key), https.
    pub fn start_custom(auth: &str, tls: Option<(&Path, &Path)>) -> Registry {
        Self::start_on("127.0.0.1", auth, tls)
    }

    /// As `start_custom`, listening on another address of this machine.
    pub fn start_on(ip: &str, auth: &str, tls: Option<(&Path, &Path)>) -> Registry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} missing: run scripts/install-deps.sh"
        );
        let dir = tempfile::Builder::new()
            .prefix("unionctl-registry-")
            .tempdir_in("/var/tmp")
            .unwrap();
        for _ in 0..5 {
            let port = TcpListener::bind(format!("{ip}:0"))
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let tls_yaml = tls
                .map(|(c, k)| {
                    format!(
                        "  tls:\n    certificate: {}\n    key: {}\n",
                        c.display(),
                        k.display()
                    )
                })
                .unwrap_or_default();
            // maxentries 1: every catalog page holds one repository, so a listing of
            // several repositories has to follow the `Link` header.
            let config = format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
                 delete:\n    enabled: true\nhttp:\n  addr: {ip}:{port}\n{tls_yaml}catalog:\n  maxentries: 1\n{auth}",
                dir.path().join("data").display()
            );
            let cfg = dir.path().join("config.yml");
            fs::write(&cfg, config).unwrap();
            let log = fs::File::create(dir.path().join("registry.log")).unwrap();
            let mut child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("starting docker-registry");
            let host = format!("{ip}:{port}");
            // The registry logs "listening on" once its socket listens (info level), or a
            // fatal line when it cannot (the port was taken meanwhile: try another). The
            // wait wakes on each write to the log (inotify).
            let log_path = dir.path().join("registry.log");
            let log = || fs::read_to_string(&log_path).unwrap_or_default();
            super::image_support::events::wait_on_path(
                &log_path,
                "docker-registry to listen or fail",
                || {
                    let l = log();
                    l.contains("listening on") || l.contains("level=fatal")
                },
            );
            if log().contains("listening on") {
                return Registry { host, dir, child };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "docker-registry did not start: {}",
            fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default()
        );
    }

    /// The registry's stored data of a blob (its filesystem driver layout).
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    pub fn log(&self) -> String {
        let raw = fs::read(self.dir.path().join("registry.log")).unwrap_or_default();
        String::from_utf8_lossy(&raw).into_owned()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bcrypt htpasswd file with one user (`htpasswd -B`, as the registry requires).
pub fn htpasswd(dir: &Path, user: &str, password: &str) -> PathBuf {
    let out = Command::new("htpasswd")
        .args(["-Bbn", user, password])
        .output()
        .expect("htpasswd (apache2-utils) missing: run scripts/install-deps.sh");
    assert!(out.status.success());
    let p = dir.join("htpasswd");
    fs::write(&p, out.stdout).unwrap();
    p
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl missing: run scripts/install-deps.sh");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new RSA key and a self-signed certificate for `subject`, valid two days.
fn self_signed_cert(subject: &str, extra: &[&str], key: &str, cert: &str) {
    let mut args = vec![
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", subject,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-keyout", key, "-out", cert]);
    openssl(&args);
}

/// A self-signed certificate for 127.0.0.1 (registry TLS, token signing): (cert, key).
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    self_signed_cert(
        "/CN=127.0.0.1",
        &["-addext", "subjectAltName=IP:127.0.0.1"],
        key.to_str().unwrap(),
        cert.to_str().unwrap(),
    );
    (cert, key)
}

/// A test CA and a server certificate it signed for this IP: (ca, cert, key).
pub fn ca_and_server_cert(dir: &Path, ip: &str) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let (ca, ca_key, csr, cert, key) = (
        p("ca.pem"),
        p("ca.key"),
        p("srv.csr"),
        p("srv.pem"),
        p("srv.key"),
    );
    self_signed_cert("/CN=unionctl test CA", &[], &ca_key, &ca);
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        &format!("/CN={ip}"),
        "-keyout",
        &key,
        "-out",
        &csr,
    ]);
    let ext = dir.join("srv.ext");
    fs::write(
        &ext,
        format!("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:{ip}\n"),
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        ext.to_str().unwrap(),
        "-out",
        &cert,
    ]);
    (PathBuf::from(ca), PathBuf::from(cert), PathBuf::from(key))
}

/// The token server (token_server.py), stopped when dropped.
pub struct TokenServer {
    pub realm: String,
    child: Child,
}

impl TokenServer {
    pub fn start(cert: &Path, key: &Path, issuer: &str, user: &str, password: &str) -> TokenServer {
        use std::io::BufRead;
        let der = Command::new("openssl")
            .args(["x509", "-outform", "der", "-in"])
            .arg(cert)
            .output()
            .unwrap();
        assert!(der.status.success());
        let der_b64 = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(&der.stdout)
        };
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/registry_support/token_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(key)
            .args([&der_b64, issuer, user, password])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 missing: run scripts/install-deps.sh");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().expect("token server did not start");
        TokenServer {
            realm: format!("http://127.0.0.1:{port}/token"),
            child,
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An IPv4 address of this machine that is not a loopback one (a registry there is not
/// "local", so its certificate is checked).
pub fn outside_ipv4() -> String {
    let out = Command::new("hostname").arg("-I").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .expect("this test needs a non-loopback IPv4 address")
        .to_string()
}
