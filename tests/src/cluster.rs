//! A cluster of real `insights` processes on one machine: a fresh
//! PostgreSQL database, Azurite, N nodes (each with its own data
//! directory and configuration file, sharing the root key, the API token
//! key, the database and the blob store) and HAProxy in front of the API
//! nodes, health-checked, all on free ports. Nodes are killed (SIGKILL),
//! stopped (SIGTERM) and restarted on the same address; everything is
//! stopped and removed when the [`Cluster`] is dropped.
//!
//! ```ignore
//! let mut c = Cluster::start(ClusterSpec { api_nodes: 2 });
//! c.add_tenant("contoso");
//! reqwest::get(format!("{}/api/…", c.lb_url()));   // through HAProxy
//! c.node_mut(1).kill9();
//! c.haproxy().wait_state("api-2", ServerState::Down, Duration::from_secs(5));
//! ```
//!
//! The one place that says how each role is started and which path
//! HAProxy checks is [`HEALTH_PATH`] and [`Role::args`] /
//! [`Role::serves_http`]: the tests, the benchmark and the systemd unit
//! test (`tests/cluster/units.rs`) all take them from here.
//!
//! The nodes run the `insights` binary of the same build profile (the one
//! `cargo nextest run --workspace` builds next to the test executables),
//! or the one `INSIGHTS_BIN` names.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The path HAProxy's health check asks every API node: 200 means "send
/// me requests". Today's `insights serve` answers `/healthz`; with the
/// node roles it becomes `/readyz`.
pub const HEALTH_PATH: &str = "/readyz";

/// The HAProxy configuration template (`tests/cluster/haproxy.cfg.tmpl`),
/// which docs/deployment.md shows as it is.
pub const HAPROXY_TEMPLATE: &str = include_str!("../cluster/haproxy.cfg.tmpl");

/// What a node does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The HTTP API (and web UI) behind the load balancer.
    Api,
    /// The Teams webhook, media WebSocket, spool and uploader.
    Gateway,
    /// The AI pipeline's job workers.
    Worker,
    /// Retention and directory-sync schedules.
    Scheduler,
}

impl Role {
    /// Every role, in the order of the systemd units.
    pub const ALL: [Role; 4] = [Role::Api, Role::Gateway, Role::Worker, Role::Scheduler];

    /// The role's name (`insights-<name>.service`, node names).
    pub fn name(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Gateway => "gateway",
            Role::Worker => "worker",
            Role::Scheduler => "scheduler",
        }
    }

    /// The `insights` subcommand (and its arguments) that runs a test
    /// node of this role; global flags (`--config`) come before it. A test
    /// API node runs every role (`insights serve`): calls are recorded
    /// through each API node's own gateway, and the schedules of both API
    /// nodes share their leases.
    pub fn args(self) -> &'static [&'static str] {
        match self {
            Role::Api => &["serve"],
            Role::Gateway => &["gateway"],
            Role::Worker => &["worker"],
            Role::Scheduler => &["scheduler"],
        }
    }

    /// The role's shorthand as a deployment runs it (the systemd units
    /// under `deploy/systemd/`: one unit per role).
    pub fn unit_args(self) -> &'static [&'static str] {
        match self {
            Role::Api => &["api"],
            Role::Gateway => &["gateway"],
            Role::Worker => &["worker"],
            Role::Scheduler => &["scheduler"],
        }
    }

    /// Whether the node listens for HTTP (and so answers [`HEALTH_PATH`]
    /// and prints `insights: listening on …`). Today `insights worker`
    /// serves nothing; with the node roles every role does.
    pub fn serves_http(self) -> bool {
        !matches!(self, Role::Worker)
    }
}

/// What to start.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// API nodes behind HAProxy (`api-1`, `api-2`, …).
    pub api_nodes: usize,
}

/// The `insights` binary the nodes run: `INSIGHTS_BIN`, else the one
/// beside the running test or bench executable (`target/<profile>/`).
pub fn insights_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("INSIGHTS_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    // target/<profile>/deps/<test>-<hash> → target/<profile>/insights
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("insights"))
        .unwrap_or_else(|| panic!("no target folder above {}", exe.display()));
    assert!(
        bin.is_file(),
        "{} does not exist: the cluster tests run the real binary. Build it in the same profile \
         first (`cargo build --bin insights`, `cargo build --release --bin insights` for the \
         benchmark; `cargo nextest run --workspace` does it), or set INSIGHTS_BIN",
        bin.display()
    );
    bin
}

/// A free TCP port on 127.0.0.1 (bound once and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// `GET path` over plain HTTP/1.1 (`Connection: close`) to `addr` with a
/// 2 s timeout: the status code and the body (chunked bodies decoded),
/// or `None` if nothing answered.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let timeout = Duration::from_secs(2);
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    Some((status, body))
}

/// Decodes an HTTP/1.1 chunked body.
fn dechunk(mut rest: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(after.get(..size)?);
        rest = after.get(size..)?.strip_prefix("\r\n")?;
    }
}

/// Runs `f` on a thread of its own with a fresh single-threaded tokio
/// runtime, so the harness can be used from sync code and from inside
/// another runtime alike.
fn block_on<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
            .block_on(f)
    })
    .join()
    .unwrap_or_else(|_| panic!("harness thread panicked"))
}

/// One `insights` process: its role, address, data directory,
/// configuration file and log (stderr).
pub struct Node {
    name: String,
    role: Role,
    addr: SocketAddr,
    dir: PathBuf,
    bin: PathBuf,
    child: Option<Child>,
    /// Starts so far (each appends a header to the log).
    starts: u32,
    /// The command line instead of [`Role::args`] (a node of several
    /// roles, [`Cluster::start_layout`]).
    args: Option<Vec<String>>,
    /// Environment variables of the node's processes (node and CLI).
    env: Vec<(String, String)>,
}

impl Node {
    /// The node's name (`api-1`, …), also its `node_name` and its
    /// server name in HAProxy.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The address the node listens on (the same after a restart).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`: the node itself, bypassing HAProxy.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The node's configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("insights.toml")
    }

    /// The node's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Where the node's stderr goes (appended across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("node.log")
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `insights --config <this node's file> ARGS`, with no `INSIGHTS_*`
    /// variable inherited (the file is the whole configuration).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.current_dir(&self.dir)
            .arg("--config")
            .arg(self.config_path())
            .args(args);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("INSIGHTS_") {
                c.env_remove(k);
            }
        }
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Runs `insights ARGS` with this node's configuration to the end.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()))
    }

    /// Runs `insights ARGS` and fails the test unless it succeeds; its
    /// stdout.
    #[track_caller]
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "insights {args:?} on {} failed: {stdout}{}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Starts the process and waits (up to 60 s) until it listens and its
    /// [`HEALTH_PATH`] answers 200 (for a role that serves HTTP).
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} is running already", self.name);
        self.starts += 1;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap_or_else(|e| panic!("{}: {e}", self.log_path().display()));
        let _ = writeln!(log, "---- start {} of {}", self.starts, self.name);
        let args: Vec<&str> = match &self.args {
            Some(a) => a.iter().map(String::as_str).collect(),
            None => self.role.args().to_vec(),
        };
        let mut child = self
            .command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        let stdout = child.stdout.take();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Keeps reading to the end so the node never blocks on stdout.
            for line in stdout.into_iter().flat_map(|s| BufReader::new(s).lines()) {
                let Ok(line) = line else { break };
                if line.starts_with("insights: listening on ") {
                    let _ = tx.send(());
                }
            }
        });
        self.child = Some(child);
        if !self.role.serves_http() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut listening = false;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!("{} exited at start ({status}): {}", self.name, self.log());
            }
            listening = listening || rx.try_recv().is_ok();
            if listening && matches!(http_get(self.addr, HEALTH_PATH), Some((200, _))) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready within 60 s (listening: {listening}): {}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, sig: &str) {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("{} is not running", self.name));
        let st = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap_or_else(|e| panic!("kill: {e}"));
        assert!(st.success(), "kill {sig} {pid} failed");
    }

    /// SIGKILL: the node dies at once, connections reset, nothing
    /// flushed.
    pub fn kill9(&mut self) -> ExitStatus {
        let mut child = self
            .child
            .take()
            .unwrap_or_else(|| panic!("{} is not running", self.name));
        let _ = child.kill();
        child
            .wait()
            .unwrap_or_else(|e| panic!("wait for {}: {e}", self.name))
    }

    /// SIGTERM, then waits (up to `grace`) for the node to exit; SIGKILL
    /// after that (and the test fails).
    #[track_caller]
    pub fn terminate(&mut self, grace: Duration) -> ExitStatus {
        self.signal("-TERM");
        let deadline = Instant::now() + grace;
        loop {
            let child = self.child.as_mut().unwrap_or_else(|| unreachable!());
            if let Some(status) = child.try_wait().unwrap_or(None) {
                self.child = None;
                return status;
            }
            if Instant::now() > deadline {
                self.kill9();
                panic!("{} did not stop within {grace:?} of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts a stopped or killed node again, on the same address with
    /// the same data directory.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.kill9();
        }
        self.start();
    }

    /// Whether the process is alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A server's state as HAProxy's health checks see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerState {
    /// In rotation, every recent check passed (`UP`).
    Up,
    /// Out of rotation (`DOWN`, also `DOWN 1/2` while coming back).
    Down,
    /// Anything else: `UP 1/2` (in rotation, a check failed), `MAINT`, …
    Other,
}

impl ServerState {
    fn of(status: &str) -> ServerState {
        if status == "UP" {
            ServerState::Up
        } else if status.starts_with("DOWN") {
            ServerState::Down
        } else {
            ServerState::Other
        }
    }
}

/// One API server as HAProxy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerStats {
    pub name: String,
    pub state: ServerState,
    /// Sessions (requests' connections) sent to it so far (`stot`).
    pub sessions: u64,
}

/// HAProxy, run in the foreground (`-db`) from the rendered template.
pub struct HaProxy {
    child: Option<Child>,
    port: u16,
    stats_port: u16,
    config: PathBuf,
    log: PathBuf,
}

impl HaProxy {
    /// Renders [`HAPROXY_TEMPLATE`] for `servers` (name, address).
    pub fn render(port: u16, stats_port: u16, servers: &[(String, SocketAddr)]) -> String {
        let lines = servers
            .iter()
            .map(|(name, addr)| format!("    server {name} {addr} check"))
            .collect::<Vec<_>>()
            .join("\n");
        HAPROXY_TEMPLATE
            .replace("{{bind}}", &format!("127.0.0.1:{port}"))
            .replace("{{stats_bind}}", &format!("127.0.0.1:{stats_port}"))
            .replace("{{health_path}}", HEALTH_PATH)
            .replace("{{servers}}", &lines)
    }

    /// Writes the configuration into `dir`, checks it (`haproxy -c`) and
    /// starts HAProxy; waits until it accepts connections.
    pub fn start(dir: &Path, servers: &[(String, SocketAddr)]) -> HaProxy {
        let (port, stats_port) = (free_port(), free_port());
        let config = dir.join("haproxy.cfg");
        std::fs::write(&config, Self::render(port, stats_port, servers))
            .unwrap_or_else(|e| panic!("{}: {e}", config.display()));
        let check = Command::new("haproxy")
            .args(["-c", "-q", "-f"])
            .arg(&config)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run haproxy ({e}): the cluster tests need Debian's haproxy, which \
                     scripts/test.sh installs"
                )
            });
        assert!(
            check.status.success(),
            "haproxy -c refused the configuration: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let log = dir.join("haproxy.log");
        let mut h = HaProxy {
            child: None,
            port,
            stats_port,
            config,
            log,
        };
        h.spawn();
        h
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("{}: {e}", self.log.display()));
        let child = Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start haproxy: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while http_get(self.stats_addr(), "/stats;csv").is_none() {
            assert!(
                Instant::now() < deadline,
                "haproxy not listening within 10 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The public listener.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `http://<listener>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    fn stats_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.stats_port))
    }

    /// HAProxy's log (server state changes).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The rendered configuration.
    pub fn config(&self) -> String {
        std::fs::read_to_string(&self.config).unwrap_or_default()
    }

    /// Each API server's name, state and sessions so far, from the stats
    /// CSV.
    pub fn servers(&self) -> Vec<ServerStats> {
        let (status, csv) = http_get(self.stats_addr(), "/stats;csv")
            .unwrap_or_else(|| panic!("haproxy stats do not answer"));
        assert_eq!(status, 200, "haproxy stats: {csv}");
        // "# pxname,svname,qcur,…,stot,…,status,…"
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let col = |name: &str| {
            header
                .iter()
                .position(|h| *h == name)
                .unwrap_or_else(|| panic!("no `{name}` column in the stats: {csv}"))
        };
        let (px, sv, st, stot) = (col("pxname"), col("svname"), col("status"), col("stot"));
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| {
                f.len() == header.len()
                    && f[px] == "insights_api"
                    && !matches!(f[sv], "BACKEND" | "FRONTEND")
            })
            .map(|f| ServerStats {
                name: f[sv].to_owned(),
                state: ServerState::of(f[st]),
                sessions: f[stot].parse().unwrap_or(0),
            })
            .collect()
    }

    /// Server `name`'s line of [`HaProxy::servers`].
    pub fn server(&self, name: &str) -> ServerStats {
        self.servers()
            .into_iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no server {name} in haproxy"))
    }

    /// The state of server `name`.
    pub fn state(&self, name: &str) -> ServerState {
        self.server(name).state
    }

    /// Waits until server `name` is in `state`; how long it took. Fails
    /// the test after `timeout`.
    #[track_caller]
    pub fn wait_state(&self, name: &str, state: ServerState, timeout: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if self.state(name) == state {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < timeout,
                "haproxy server {name} not {state:?} within {timeout:?}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The whole cluster; dropped, it stops every process, drops its
/// database and removes its folder.
pub struct Cluster {
    // Field order is drop order: processes first, then the folder.
    haproxy: HaProxy,
    nodes: Vec<Node>,
    pg_url: String,
    azurite: String,
    dir: tempfile::TempDir,
}

/// 64 random hex digits (a root key).
fn random_hex() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// A node's configuration file: the shared database, blob store, root
/// key and API token key; its own name, address and data directory.
fn node_config(
    name: &str,
    addr: SocketAddr,
    data_dir: &Path,
    pg_url: &str,
    azurite: &str,
    shared: &Path,
) -> String {
    let q = |s: &str| format!("{s:?}");
    format!(
        "# Node {name} of a test cluster (tests/src/cluster.rs).\n\
         data_dir = {data}\n\
         node_name = {name_q}\n\
         listen = {listen}\n\
         \n\
         [database]\n\
         url = {pg}\n\
         max_connections = 8\n\
         \n\
         [blob]\n\
         backend = \"azure\"\n\
         \n\
         [blob.azure]\n\
         endpoint = {azurite}\n\
         use_emulator = true\n\
         \n\
         [keys]\n\
         provider = \"database\"\n\
         root_key_file = {root}\n\
         \n\
         [auth]\n\
         token_key_file = {token}\n\
         trusted_proxies = [\"127.0.0.1\"]\n\
         \n\
         [gateway]\n\
         # Calls come from `insights simulate-call` in the tests.\n\
         trust_simulator_key = true\n",
        data = q(&data_dir.display().to_string()),
        name_q = q(name),
        listen = q(&addr.to_string()),
        pg = q(pg_url),
        azurite = q(azurite),
        root = q(&shared.join("root.key").display().to_string()),
        token = q(&shared.join("api-token.key").display().to_string()),
    )
}

impl Cluster {
    /// Creates a fresh database on the test PostgreSQL
    /// (`INSIGHTS_TEST_PG_URL`), uses the test Azurite
    /// (`INSIGHTS_TEST_AZURITE`), writes a root key, starts the API nodes
    /// one after the other (the first applies the migrations) and HAProxy
    /// in front of them, and waits until HAProxy has every node up.
    pub fn start(spec: ClusterSpec) -> Cluster {
        assert!(spec.api_nodes >= 1, "a cluster needs an API node");
        let bin = insights_bin();
        let azurite = crate::azurite_endpoint();
        let pg_url = block_on(crate::fresh_pg_database());
        let dir = tempfile::Builder::new()
            .prefix("insights-cluster.")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        let shared = dir.path().join("shared");
        std::fs::create_dir_all(&shared).unwrap_or_else(|e| panic!("{e}"));
        // The root key of the `database` key provider and the API token
        // key: 64 hex digits each, the same on every node.
        write_private(&shared.join("root.key"), &format!("{}\n", random_hex()));
        write_private(
            &shared.join("api-token.key"),
            &format!("{}\n", random_hex()),
        );

        let mut nodes = Vec::new();
        for i in 1..=spec.api_nodes {
            let name = format!("api-{i}");
            let node_dir = dir.path().join(&name);
            std::fs::create_dir_all(&node_dir).unwrap_or_else(|e| panic!("{e}"));
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let node = Node {
                name: name.clone(),
                role: Role::Api,
                addr,
                dir: node_dir.clone(),
                bin: bin.clone(),
                child: None,
                starts: 0,
                args: None,
                env: Vec::new(),
            };
            std::fs::write(
                node.config_path(),
                node_config(&name, addr, &node.data_dir(), &pg_url, &azurite, &shared),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            nodes.push(node);
        }
        for n in &mut nodes {
            n.start();
        }
        let servers: Vec<(String, SocketAddr)> =
            nodes.iter().map(|n| (n.name.clone(), n.addr)).collect();
        let haproxy = HaProxy::start(dir.path(), &servers);
        for (name, _) in &servers {
            haproxy.wait_state(name, ServerState::Up, Duration::from_secs(10));
        }
        Cluster {
            haproxy,
            nodes,
            pg_url,
            azurite,
            dir,
        }
    }

    /// `http://<HAProxy>`: where clients go.
    pub fn lb_url(&self) -> String {
        self.haproxy.url()
    }

    pub fn haproxy(&self) -> &HaProxy {
        &self.haproxy
    }

    /// Node `i` (0-based, `api-{i+1}`).
    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    pub fn node_mut(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i]
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The cluster's database (an admin URL of its own database).
    pub fn pg_url(&self) -> &str {
        &self.pg_url
    }

    pub fn azurite(&self) -> &str {
        &self.azurite
    }

    /// The cluster's folder (nodes, shared keys, HAProxy files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `insights admin tenant add NAME` (random directory tenant id).
    pub fn add_tenant(&self, name: &str) {
        let dir_tenant = uuid::Uuid::new_v4().to_string();
        self.nodes[0].cli_ok(&[
            "admin",
            "tenant",
            "add",
            name,
            "--directory-tenant-id",
            &dir_tenant,
        ]);
    }

    /// Every node's and HAProxy's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for n in &self.nodes {
            s.push_str(&format!("==== {} ====\n{}\n", n.name, n.log()));
        }
        s.push_str(&format!("==== haproxy ====\n{}\n", self.haproxy.log()));
        s
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Processes first (Node and HaProxy drops kill them).
        self.nodes.clear();
        if let Some(mut c) = self.haproxy.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let url = self.pg_url.clone();
        let _ = std::panic::catch_unwind(move || block_on(drop_database(url)));
    }
}

/// Drops the cluster's database (best effort: `scripts/test.sh` drops its
/// run's databases anyway).
async fn drop_database(url: String) {
    use sqlx::Connection;
    let Some((_, name)) = url.split('?').next().and_then(|u| u.rsplit_once('/')) else {
        return;
    };
    let name = name.to_owned();
    let Ok(mut conn) = sqlx::PgConnection::connect(&crate::pg_admin_url()).await else {
        return;
    };
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await;
    let _ = conn.close().await;
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, content: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    f.write_all(content.as_bytes())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// A WAV file (16 kHz mono PCM16) of `secs` seconds of a tone at `hz`,
/// switched on and off every 300 ms (speech-like activity), for
/// `insights simulate-call --participant NAME:ADDR:FILE`.
pub fn tone_wav(path: &Path, secs: u32, hz: f32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let fail = |e: hound::Error| -> ! { panic!("{}: {e}", path.display()) };
    let mut w = hound::WavWriter::create(path, spec).unwrap_or_else(|e| fail(e));
    for i in 0..spec.sample_rate * secs {
        let t = i as f32 / spec.sample_rate as f32;
        let on = ((t / 0.3) as u32).is_multiple_of(2);
        let v = if on {
            (t * hz * std::f32::consts::TAU).sin() * 8000.0
        } else {
            0.0
        };
        w.write_sample(v as i16).unwrap_or_else(|e| fail(e));
    }
    w.finalize().unwrap_or_else(|e| fail(e));
}

// ---- Clusters of mixed roles (tests/cluster/proof.rs) ---------------------

/// One node of [`Cluster::start_layout`]: its name (also its
/// `node_name`) and its roles.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub name: String,
    pub roles: Vec<Role>,
}

impl NodeSpec {
    pub fn new(name: &str, roles: &[Role]) -> NodeSpec {
        assert!(!roles.is_empty(), "node {name} needs a role");
        NodeSpec {
            name: name.to_owned(),
            roles: roles.to_vec(),
        }
    }

    /// The command line a deployment runs: the shorthand of a single
    /// role (`insights gateway`), `insights serve --roles a,b,…` for
    /// several.
    pub fn args(&self) -> Vec<String> {
        match self.roles.as_slice() {
            [one] => one.unit_args().iter().map(|s| (*s).to_owned()).collect(),
            many => vec![
                "serve".to_owned(),
                "--roles".to_owned(),
                many.iter().map(|r| r.name()).collect::<Vec<_>>().join(","),
            ],
        }
    }
}

/// What every node of a [`Cluster::start_layout`] adds to the
/// configuration the harness writes (database, blob store, keys, name,
/// address, `[auth]` token key and trusted proxies, `[gateway]`
/// simulator trust).
#[derive(Clone, Debug, Default)]
pub struct NodeExtras {
    /// Top-level keys, written before any table (`allow_insecure_http =
    /// true`).
    pub top: String,
    /// Tables appended at the end: new ones (`[worker]`, `[stt]`, …) or
    /// sub-tables of the written ones (`[auth.oidc]`).
    pub tables: String,
    /// Environment variables of the nodes' processes (secrets named by
    /// `*_env` settings).
    pub env: Vec<(String, String)>,
}

impl Node {
    /// The media adapter token a gateway node generated in its data
    /// directory (`keys/media-adapter.token`).
    pub fn media_token(&self) -> String {
        let path = self.data_dir().join("keys").join("media-adapter.token");
        std::fs::read_to_string(&path)
            .map(|t| t.trim().to_owned())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The simulator signing key a gateway node trusts
    /// (`keys/simulator-signing.pem` of its data directory).
    pub fn simulator_key_path(&self) -> PathBuf {
        self.data_dir().join("keys").join("simulator-signing.pem")
    }
}

impl Cluster {
    /// Like [`Cluster::start`], for a layout of nodes with their own
    /// roles (`layout` in start order: the first applies the
    /// migrations); HAProxy balances the nodes with the API role. Every
    /// node gets `extras`.
    pub fn start_layout(layout: &[NodeSpec], extras: &NodeExtras) -> Cluster {
        assert!(
            layout.iter().any(|n| n.roles.contains(&Role::Api)),
            "a cluster needs an API node"
        );
        let bin = insights_bin();
        let azurite = crate::azurite_endpoint();
        let pg_url = block_on(crate::fresh_pg_database());
        let dir = tempfile::Builder::new()
            .prefix("insights-cluster.")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        let shared = dir.path().join("shared");
        std::fs::create_dir_all(&shared).unwrap_or_else(|e| panic!("{e}"));
        write_private(&shared.join("root.key"), &format!("{}\n", random_hex()));
        write_private(
            &shared.join("api-token.key"),
            &format!("{}\n", random_hex()),
        );
        let mut nodes = Vec::new();
        for spec in layout {
            let node_dir = dir.path().join(&spec.name);
            std::fs::create_dir_all(&node_dir).unwrap_or_else(|e| panic!("{e}"));
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let node = Node {
                name: spec.name.clone(),
                role: spec.roles[0],
                addr,
                dir: node_dir,
                bin: bin.clone(),
                child: None,
                starts: 0,
                args: Some(spec.args()),
                env: extras.env.clone(),
            };
            let base = node_config(
                &spec.name,
                addr,
                &node.data_dir(),
                &pg_url,
                &azurite,
                &shared,
            );
            std::fs::write(
                node.config_path(),
                format!("{}\n{base}\n{}\n", extras.top, extras.tables),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            nodes.push(node);
        }
        for n in &mut nodes {
            n.start();
        }
        let servers: Vec<(String, SocketAddr)> = layout
            .iter()
            .zip(&nodes)
            .filter(|(spec, _)| spec.roles.contains(&Role::Api))
            .map(|(_, n)| (n.name.clone(), n.addr))
            .collect();
        let haproxy = HaProxy::start(dir.path(), &servers);
        for (name, _) in &servers {
            haproxy.wait_state(name, ServerState::Up, Duration::from_secs(10));
        }
        Cluster {
            haproxy,
            nodes,
            pg_url,
            azurite,
            dir,
        }
    }

    /// The index of the node called `name`.
    pub fn index_of(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }
}
