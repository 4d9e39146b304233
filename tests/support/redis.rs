//! A real `redis-server` for tests: started on a free loopback port in its own temporary
//! directory, and able to be killed, paused (`CLIENT PAUSE`) and restarted on the same port.
//! Never a shared or fixed port. A missing binary fails the test with how to install it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "redis-server (and redis-cli) are needed by the Redis budget tests: \
     install them with `sudo apt-get install -y redis-server` (scripts/test.sh does this)";

/// A free loopback port (the listener is closed at once; a start that loses the race retries).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Ports reserved by [`RedisServer::unused_port`], with the sockets holding them.
static RESERVED: std::sync::Mutex<Vec<(u16, tokio::net::TcpSocket)>> =
    std::sync::Mutex::new(Vec::new());

fn temp_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tower-retrier-redis-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// How to start a server.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `requirepass` for the default user.
    pub password: Option<String>,
    /// Start as a cluster node.
    pub cluster: bool,
    /// Also listen for TLS on a second port, with these PEM files.
    pub tls: Option<TlsFiles>,
    /// `cluster-node-timeout` in milliseconds (Redis' default, 15 s, when `None`): how long
    /// a silent node takes to be declared failed and its replica promoted.
    pub node_timeout_ms: Option<u64>,
}

/// Certificate files for a TLS listener.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// How a leaf certificate issued by [`TlsFiles::issue`] is flawed, if at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leaf {
    /// Valid for 127.0.0.1, for two days from now.
    Valid,
    /// For 127.0.0.1, but valid only on 1-2 January 2020.
    Expired,
    /// Valid now, but for the host name `other.example` only (not 127.0.0.1).
    WrongName,
}

/// Runs `openssl` in `dir`, failing the test with its error output.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = match Command::new("openssl").args(args).current_dir(dir).output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("the TLS test needs the `openssl` command: `sudo apt-get install -y openssl`")
        }
        Err(e) => panic!("cannot run openssl: {e}"),
    };
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TlsFiles {
    /// A leaf certificate signed by the CA already in `dir` (made by [`TlsFiles::generate`]),
    /// flawed as `leaf` says, in files named after `name`.
    ///
    /// An expired certificate needs a start date in the past, which `openssl x509` (3.0)
    /// cannot set; `openssl ca` can, with a minimal CA configuration written here.
    pub fn issue(dir: &std::path::Path, name: &str, leaf: Leaf) -> Self {
        let san = match leaf {
            Leaf::Valid | Leaf::Expired => "subjectAltName=IP:127.0.0.1\n",
            Leaf::WrongName => "subjectAltName=DNS:other.example\n",
        };
        let ext = format!("{name}.ext");
        std::fs::write(dir.join(&ext), san).unwrap();
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        let subject = match leaf {
            Leaf::WrongName => "/CN=other.example",
            _ => "/CN=127.0.0.1",
        };
        openssl(
            dir,
            &[
                "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", &key, "-out",
                &csr,
            ],
        );
        std::fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca = test\n[test]\ndatabase = index.txt\nnew_certs_dir = .\n\
             serial = serial\ndefault_md = sha256\npolicy = any\nunique_subject = no\n\
             [any]\ncommonName = supplied\n",
        )
        .unwrap();
        if !dir.join("serial").exists() {
            std::fs::write(dir.join("serial"), "1000\n").unwrap();
            std::fs::write(dir.join("index.txt"), "").unwrap();
        }
        let (start, end) = match leaf {
            Leaf::Expired => ("20200101000000Z".to_owned(), "20200102000000Z".to_owned()),
            _ => {
                // Yesterday to two days from now, in openssl's date format.
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                (asn1_time(now - 86_400), asn1_time(now + 2 * 86_400))
            }
        };
        openssl(
            dir,
            &[
                "ca",
                "-batch",
                "-config",
                "ca.cnf",
                "-cert",
                "ca.crt",
                "-keyfile",
                "ca.key",
                "-in",
                &csr,
                "-out",
                &crt,
                "-notext",
                "-startdate",
                &start,
                "-enddate",
                &end,
                "-extfile",
                &ext,
            ],
        );
        TlsFiles {
            cert: dir.join(crt),
            key: dir.join(key),
            ca: dir.join("ca.crt"),
        }
    }

    /// A CA and a server certificate for 127.0.0.1 made with the `openssl` command in `dir`.
    pub fn generate(dir: &std::path::Path) -> Self {
        let run = |args: &[&str]| {
            let out = match Command::new("openssl").args(args).current_dir(dir).output() {
                Ok(o) => o,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    panic!(
                        "the TLS test needs the `openssl` command: `sudo apt-get install -y openssl`"
                    )
                }
                Err(e) => panic!("cannot run openssl: {e}"),
            };
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.crt",
        ]);
        TlsFiles {
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
            ca: dir.join("ca.crt"),
        }
    }
}

/// `YYYYMMDDHHMMSSZ` for a Unix time (UTC), as `openssl ca -startdate` wants it.
fn asn1_time(unix: u64) -> String {
    let (days, secs) = (unix / 86_400, unix % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// One `redis-server` process, killed (and its directory removed) on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    tls_port: u16,
    dir: PathBuf,
    options: Options,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a plain server on a free port.
    pub fn start() -> Self {
        Self::start_with(Options::default())
    }

    /// Starts a server with `options` on a free port.
    pub fn start_with(options: Options) -> Self {
        let dir = temp_dir();
        let mut last = String::new();
        for _ in 0..5 {
            let mut server = RedisServer {
                port: free_port(),
                tls_port: free_port(),
                dir: dir.clone(),
                options: options.clone(),
                child: None,
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start: {last}");
    }

    /// A port that nothing listens on (connections are refused), for "server missing"
    /// tests; `start_on` can later start a server there.
    ///
    /// The port stays reserved by a socket bound with `SO_REUSEADDR` but not listening: no
    /// other socket can take it meanwhile (the kernel hands bound ports to neither `bind(0)`
    /// nor `connect`), while redis-server, which also sets `SO_REUSEADDR`, can still listen
    /// there. Releasing the port and binding it again later could lose it to another test.
    pub fn unused_port() -> u16 {
        let socket = tokio::net::TcpSocket::new_v4().expect("create a socket");
        socket.set_reuseaddr(true).unwrap();
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind 127.0.0.1:0");
        let port = socket.local_addr().unwrap().port();
        RESERVED.lock().unwrap().push((port, socket));
        port
    }

    /// Starts a server on a port from [`unused_port`](Self::unused_port) (e.g. one a lazily
    /// connecting client already targets), then releases the reservation.
    pub fn start_on(port: u16) -> Self {
        let mut server = RedisServer {
            port,
            tls_port: 0,
            dir: temp_dir(),
            options: Options::default(),
            child: None,
        };
        // A start can fail for reasons other than the port (a slow machine): try again.
        let mut last = String::new();
        for _ in 0..3 {
            match server.spawn() {
                Ok(()) => {
                    RESERVED.lock().unwrap().retain(|(p, _)| *p != port);
                    return server;
                }
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start on port {port}: {last}")
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--loglevel", "warning"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(p) = &self.options.password {
            cmd.args(["--requirepass", p]);
        }
        if let Some(tls) = &self.options.tls {
            cmd.args([
                "--tls-port",
                &self.tls_port.to_string(),
                "--tls-auth-clients",
                "no",
            ])
            .arg("--tls-cert-file")
            .arg(&tls.cert)
            .arg("--tls-key-file")
            .arg(&tls.key)
            .arg("--tls-ca-cert-file")
            .arg(&tls.ca);
        }
        if self.options.cluster {
            cmd.args(["--cluster-enabled", "yes", "--cluster-config-file"])
                .arg(self.dir.join(format!("nodes-{}.conf", self.port)));
            if let Some(ms) = self.options.node_timeout_ms {
                cmd.args(["--cluster-node-timeout", &ms.to_string()]);
            }
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
            Err(e) => panic!("cannot run redis-server: {e}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                let mut out = String::new();
                if let Some(mut s) = child.stdout.take() {
                    let _ = s.read_to_string(&mut out);
                }
                return Err(format!("exited with {status}: {out}"));
            }
            if self.try_command(&["PING"]).is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err("not ready within 10 s".into())
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS port (when started with `Options::tls`).
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    /// A temporary directory for files a test needs (removed with the server).
    pub fn temp_dir() -> PathBuf {
        temp_dir()
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the process (SIGKILL: no goodbye to clients, like a crashed host).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty: no data, no scripts).
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!("restart failed: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// `CLIENT PAUSE ms ALL`: every client's commands stall for `ms` (a slow server).
    pub fn pause(&self, ms: u64) {
        self.command(&["CLIENT", "PAUSE", &ms.to_string(), "ALL"]);
    }

    /// Runs one command on a fresh connection and returns the reply as text (errors too).
    pub fn command(&self, args: &[&str]) -> String {
        self.try_command(args)
            .unwrap_or_else(|e| panic!("redis command {args:?} failed: {e}"))
    }

    fn try_command(&self, args: &[&str]) -> Result<String, String> {
        match &self.options.password {
            Some(p) => {
                let replies = raw_pipelined(self.port, &[&["AUTH", p], args])?;
                if replies[0] != "OK" {
                    return Err(format!("AUTH: {}", replies[0]));
                }
                Ok(replies[1].clone())
            }
            None => raw(self.port, args),
        }
    }

    /// Runs one command preceded by `ASKING`, so a cluster node answers for a slot it is
    /// still importing (no password support: cluster tests use none).
    pub fn command_asking(&self, args: &[&str]) -> String {
        let mut replies = raw_pipelined(self.port, &[&["ASKING"], args])
            .unwrap_or_else(|e| panic!("redis command {args:?} failed: {e}"));
        replies.remove(1)
    }

    /// `INFO commandstats` calls for one command (e.g. "evalsha"), 0 when never called.
    pub fn command_calls(&self, name: &str) -> u64 {
        let info = self.command(&["INFO", "commandstats"]);
        let prefix = format!("cmdstat_{name}:calls=");
        info.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of `n` primaries (no replicas), each a [`RedisServer`].
#[derive(Debug)]
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `n` cluster-enabled nodes and joins them with `redis-cli --cluster create`.
    pub fn start(n: usize) -> Self {
        Self::start_with(n, 0, None)
    }

    /// Starts `primaries × (1 + replicas)` nodes: `primaries` primaries, each with
    /// `replicas` replicas, and the given `cluster-node-timeout`.
    pub fn start_with(primaries: usize, replicas: usize, node_timeout_ms: Option<u64>) -> Self {
        let nodes: Vec<RedisServer> = (0..primaries * (1 + replicas))
            .map(|_| {
                RedisServer::start_with(Options {
                    cluster: true,
                    node_timeout_ms,
                    ..Options::default()
                })
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port()))
            .collect();
        let out = match Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
        {
            Ok(o) => o,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
            Err(e) => panic!("cannot run redis-cli: {e}"),
        };
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while !nodes
            .iter()
            .all(|s| s.command(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        {
            assert!(Instant::now() < deadline, "cluster did not become ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        RedisCluster { nodes }
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`).
    pub fn keyslot(&self, key: &str) -> u16 {
        self.nodes[0]
            .command(&["CLUSTER", "KEYSLOT", key])
            .parse()
            .expect("a slot number")
    }

    /// The index of a replica of node `primary` (by each live node's own `CLUSTER NODES`
    /// line: `slave <primary-id>`).
    pub fn replica_of(&self, primary: usize) -> Option<usize> {
        let id = self.node_id(primary);
        self.nodes.iter().position(|n| {
            n.try_command(&["CLUSTER", "NODES"]).is_ok_and(|nodes| {
                nodes
                    .lines()
                    .any(|l| l.contains("myself") && l.contains("slave") && l.contains(id.as_str()))
            })
        })
    }

    /// The node's cluster ID (`CLUSTER MYID`).
    pub fn node_id(&self, node: usize) -> String {
        self.nodes[node].command(&["CLUSTER", "MYID"])
    }

    /// The index of the node that serves `slot`, by each node's own view of its slots
    /// (`CLUSTER NODES`, the `myself` line); `None` while no live node claims it.
    pub fn owner_of(&self, slot: u16) -> Option<usize> {
        self.nodes.iter().position(|n| {
            let Ok(nodes) = n.try_command(&["CLUSTER", "NODES"]) else {
                return false; // down
            };
            nodes
                .lines()
                .find(|l| l.contains("myself"))
                .is_some_and(|me| {
                    me.split_whitespace().skip(8).any(|range| {
                        let mut ends = range.splitn(2, '-');
                        let lo = ends.next().and_then(|v| v.parse::<u16>().ok());
                        let hi = ends.next().and_then(|v| v.parse::<u16>().ok()).or(lo);
                        matches!((lo, hi), (Some(lo), Some(hi)) if (lo..=hi).contains(&slot))
                    })
                })
        })
    }

    /// Starts moving `slot` from node `from` to node `to` (`SETSLOT IMPORTING`/`MIGRATING`),
    /// then moves its keys (`MIGRATE`). From now until [`finish_move`](Self::finish_move),
    /// `from` answers commands on those keys with `-ASK` redirections.
    pub fn begin_move(&self, slot: u16, from: usize, to: usize) {
        let slot_s = slot.to_string();
        let (from_id, to_id) = (self.node_id(from), self.node_id(to));
        let ok = |reply: String, what: &str| assert_eq!(reply, "OK", "{what}");
        ok(
            self.nodes[to].command(&["CLUSTER", "SETSLOT", &slot_s, "IMPORTING", &from_id]),
            "IMPORTING",
        );
        ok(
            self.nodes[from].command(&["CLUSTER", "SETSLOT", &slot_s, "MIGRATING", &to_id]),
            "MIGRATING",
        );
        let to_port = self.nodes[to].port().to_string();
        loop {
            let keys = self.nodes[from].command(&["CLUSTER", "GETKEYSINSLOT", &slot_s, "100"]);
            if keys.is_empty() {
                break;
            }
            let mut args = vec!["MIGRATE", "127.0.0.1", &to_port, "", "0", "5000", "KEYS"];
            args.extend(keys.lines());
            ok(self.nodes[from].command(&args), "MIGRATE");
        }
    }

    /// Ends a move begun with [`begin_move`](Self::begin_move): every node learns that `to`
    /// owns `slot` (clients still asking `from` get `-MOVED`).
    pub fn finish_move(&self, slot: u16, to: usize) {
        let slot_s = slot.to_string();
        let to_id = self.node_id(to);
        // The new owner first, as `redis-cli --cluster reshard` does.
        let mut order: Vec<usize> = vec![to];
        order.extend((0..self.nodes.len()).filter(|&i| i != to));
        for i in order {
            let reply = self.nodes[i].command(&["CLUSTER", "SETSLOT", &slot_s, "NODE", &to_id]);
            assert_eq!(reply, "OK", "SETSLOT NODE on node {i}");
        }
    }

    /// `redis-cluster://` URL naming every node.
    pub fn url(&self) -> String {
        let mut url = format!("redis-cluster://127.0.0.1:{}", self.nodes[0].port());
        for (i, n) in self.nodes.iter().enumerate().skip(1) {
            url.push(if i == 1 { '?' } else { '&' });
            url.push_str(&format!("node=127.0.0.1:{}", n.port()));
        }
        url
    }
}

/// One command over a fresh connection, reply rendered as text.
fn raw(port: u16, args: &[&str]) -> Result<String, String> {
    raw_pipelined(port, &[args]).map(|mut r| r.remove(0))
}

fn raw_pipelined(port: u16, commands: &[&[&str]]) -> Result<Vec<String>, String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for args in commands {
        out.extend(format!("*{}\r\n", args.len()).into_bytes());
        for a in *args {
            out.extend(format!("${}\r\n{a}\r\n", a.len()).into_bytes());
        }
    }
    (&stream).write_all(&out).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(&stream);
    commands.iter().map(|_| read_reply(&mut reader)).collect()
}

fn read_reply(r: &mut impl BufRead) -> Result<String, String> {
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    let line = line.trim_end().to_owned();
    let (kind, rest) = line.split_at(1.min(line.len()));
    match kind {
        "+" | ":" => Ok(rest.to_owned()),
        "-" => Ok(format!("ERR:{rest}")),
        "$" => {
            let len: i64 = rest.parse().map_err(|_| format!("bad reply {line}"))?;
            if len < 0 {
                return Ok("(nil)".into());
            }
            let mut buf = vec![0; len as usize + 2];
            r.read_exact(&mut buf).map_err(|e| e.to_string())?;
            buf.truncate(len as usize);
            Ok(String::from_utf8_lossy(&buf).into_owned())
        }
        "*" => {
            let n: i64 = rest.parse().map_err(|_| format!("bad reply {line}"))?;
            let items: Result<Vec<String>, String> = (0..n.max(0)).map(|_| read_reply(r)).collect();
            Ok(items?.join("\n"))
        }
        _ => Err(format!("unexpected reply {line:?}")),
    }
}
