import Foundation

/// A real dockerd 20.10 that a test starts inside a network namespace of its own, as
/// scripts/docker-oracle.py does: private data root, exec root and socket, vfs storage, and a
/// static-busybox image `tiny:1` (EXPOSE 80/tcp and 53/udp). `stop()` ends the daemon and
/// everything it started by PID and removes its directory; the namespace goes with the
/// `TestNamespace`. The machine's own namespace and daemon are never touched.
final class DockerDaemon {
    let namespace: TestNamespace
    /// The private directory: root, exec root, socket, logs.
    let directory: String
    var socket: String { directory + "/docker.sock" }
    private var daemon: Process?
    /// Whether /run/containerd existed before: containerd's shims leave an empty tree there.
    private let containerdRunExisted = FileManager.default.fileExists(atPath: "/run/containerd")

    /// Whether this machine has what it takes (dockerd 20.10, its client, a static busybox).
    static var available: Bool {
        ["/usr/sbin/dockerd", "/usr/bin/docker", "/bin/busybox"].allSatisfy(FileManager.default.isExecutableFile)
    }

    init(flags: [String] = []) throws {
        namespace = try TestNamespace()
        directory = try Self.temporaryDirectory()
        do {
            try start(flags: flags)
            try importImage()
        } catch {
            stop()
            throw error
        }
    }

    deinit { stop() }

    /// Kills dockerd and the containerd it started (SIGKILL, by PID) as a crash would, and
    /// waits for them to be gone; the containers' shims live on until `restart()`. Not
    /// `waitUntilExit`: Foundation learns of the exit when every holder of a descriptor the
    /// child inherited has closed it, and the shims hold it on; a killed process is a zombie
    /// (state Z) or gone.
    func crash() {
        guard let process = daemon, process.isRunning else { return }
        let pid = process.processIdentifier
        func state(_ pid: pid_t) -> (parent: pid_t?, zombie: Bool)? {
            let fields = Repo.read("/proc/\(pid)/stat").split(separator: ")").last?.split(separator: " ") ?? []
            guard fields.count > 1 else { return nil }
            return (pid_t(fields[1]), fields[0] == "Z")
        }
        let children = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(pid_t.init)
            .filter { state($0)?.parent == pid }
        for victim in [pid] + children { Foundation.kill(victim, SIGKILL) }
        for victim in [pid] + children {
            for _ in 0..<100 {
                guard let current = state(victim), !current.zombie else { break }
                usleep(100_000)
            }
        }
        daemon = nil
    }

    /// A namespace behind a veth `up0` of the daemon's: the daemon's side is SUBNET.1/24, the
    /// other `eth0` with SUBNET.2 and SUBNET.200, its default route through SUBNET.1.
    func outsideWorld(subnet: String) throws -> TestNamespace {
        let outside = try TestNamespace()
        for command in [
            ["ip", "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", outside.name],
            ["ip", "addr", "add", "\(subnet).1/24", "dev", "up0"], ["ip", "link", "set", "up0", "up"],
        ] {
            let result = namespace.exec(command)
            guard result.status == 0 else { throw NamespaceError(message: "\(command): \(result.stderr)") }
        }
        for command in [
            ["ip", "addr", "add", "\(subnet).2/24", "dev", "eth0"],
            ["ip", "addr", "add", "\(subnet).200/24", "dev", "eth0"],
            ["ip", "link", "set", "eth0", "up"], ["ip", "route", "add", "default", "via", "\(subnet).1"],
        ] {
            let result = outside.exec(command)
            guard result.status == 0 else { throw NamespaceError(message: "\(command): \(result.stderr)") }
        }
        return outside
    }

    static func temporaryDirectory() throws -> String {
        var template = Array("/tmp/pc-dockerd.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw NamespaceError(message: "mkdtemp failed") }
        return String(cString: made)
    }

    private func start(flags: [String]) throws {
        for sub in ["root", "exec", "cli"] {
            try FileManager.default.createDirectory(atPath: "\(directory)/\(sub)", withIntermediateDirectories: true)
        }
        // The one setting: 20.10's libtrust key stays out of /etc/docker.
        try #"{"deprecated-key-path": "\#(directory)/key.json"}"#.write(
            toFile: directory + "/daemon.json", atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        process.arguments =
            [
                "--net=/run/netns/\(namespace.name)", "/usr/sbin/dockerd", "--data-root", directory + "/root",
                "--exec-root", directory + "/exec", "-H", "unix://" + socket, "--pidfile", directory + "/pid",
                "--storage-driver", "vfs", "--config-file", directory + "/daemon.json", "--iptables=true",
            ] + flags
        guard FileManager.default.createFile(atPath: directory + "/dockerd.log", contents: nil) else {
            throw NamespaceError(message: "cannot create \(directory)/dockerd.log")
        }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: directory + "/dockerd.log"))
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        daemon = process
        for _ in 0..<300 {
            guard process.isRunning else { throw NamespaceError(message: "dockerd exited: \(tail(of: "dockerd.log"))") }
            if docker(["version"]).status == 0 { return }
            usleep(200_000)
        }
        throw NamespaceError(message: "dockerd did not answer within 60 s: \(tail(of: "dockerd.log"))")
    }

    private func importImage() throws {
        let rootfs = directory + "/rootfs"
        try FileManager.default.createDirectory(atPath: rootfs + "/bin", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: rootfs + "/bin/busybox")
        let tar = run(["tar", "-C", rootfs, "-cf", directory + "/rootfs.tar", "."])
        guard tar.status == 0 else { throw NamespaceError(message: "tar: \(tar.stderr)") }
        let imported = run([
            "sh", "-c",
            "/usr/bin/docker -H unix://\(socket) import --change 'EXPOSE 80/tcp' --change 'EXPOSE 53/udp' --change 'CMD [\"/bin/busybox\",\"sleep\",\"3600\"]' - tiny:1 < \(directory)/rootfs.tar",
        ])
        guard imported.status == 0 else { throw NamespaceError(message: "image import: \(imported.stderr)") }
    }

    /// The 20.10 client against this daemon's socket.
    @discardableResult
    func docker(_ arguments: [String]) -> CommandResult {
        run(["DOCKER_CONFIG=\(directory)/cli", "/usr/bin/docker", "-H", "unix://" + socket] + arguments)
    }

    /// Runs docker commands in order; the first that fails throws with its output.
    func docker(_ commands: [[String]]) throws {
        for command in commands {
            let result = docker(command)
            guard result.status == 0 else {
                throw NamespaceError(message: "docker \(command.joined(separator: " ")): \(result.stderr)")
            }
        }
    }

    /// Starts dockerd again on the same directory (its image and containers kept), as a host's
    /// daemon restarts: it programs its rules again. A running daemon is stopped first, by PID
    /// (its containers stop with it); after `crash()` it is already gone.
    func restart(flags: [String] = []) throws {
        if let process = daemon, process.isRunning {
            process.terminate()
            for _ in 0..<600 where process.isRunning { usleep(100_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        daemon = nil
        // A killed daemon's and containerd's pid files name zombies (nobody reaps them yet),
        // which dockerd takes for a daemon and a containerd still running.
        for file in [socket, directory + "/pid", directory + "/exec/containerd/containerd.pid"] {
            try? FileManager.default.removeItem(atPath: file)
        }
        try start(flags: flags)
    }

    private func tail(of file: String) -> String {
        String(Repo.read(directory + "/" + file).suffix(2000))
    }

    /// Removes the containers (busybox as PID 1 ignores SIGTERM, so a daemon shutdown would
    /// wait for each), stops the daemon by PID, then whatever is left in the namespace or
    /// names the private directory, and removes the directory. Safe to call twice.
    func stop() {
        if let process = daemon, process.isRunning {
            let ids = docker(["ps", "-aq"]).stdout.split(separator: "\n").map(String.init)
            if !ids.isEmpty { docker(["rm", "-f"] + ids) }
            process.terminate()
            for _ in 0..<300 where process.isRunning { usleep(100_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        daemon = nil
        // Once seen, a process stays a target: a container's process outlives its killed shim.
        var targets = Set<pid_t>()
        for signal in [SIGTERM, SIGKILL] {
            targets.formUnion(ownedProcesses())
            targets = targets.filter { FileManager.default.fileExists(atPath: "/proc/\($0)") }
            if targets.isEmpty { break }
            for pid in targets { kill(pid, signal) }
            usleep(500_000)
        }
        let mounts = Repo.read("/proc/self/mountinfo").split(separator: "\n")
            .compactMap { $0.split(separator: " ").dropFirst(4).first.map(String.init) }
            .filter { $0.hasPrefix(directory + "/") }.sorted().reversed()
        for mount in mounts { umount2(mount, Int32(MNT_DETACH)) }
        try? FileManager.default.removeItem(atPath: directory)
        if !containerdRunExisted {
            rmdir("/run/containerd/s")
            rmdir("/run/containerd")
        }
    }

    /// PIDs of processes this daemon started: those in its namespace, or whose command line
    /// names its private directory, and their descendants (the containers' processes, in
    /// namespaces of their own). Never chosen by name.
    private func ownedProcesses() -> [pid_t] {
        let namespacePath = "/run/netns/\(namespace.name)"
        let me = getpid()
        var parents: [pid_t: pid_t] = [:]
        var owned = Set<pid_t>()
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(entry), pid != me else { continue }
            let stat = Repo.read("/proc/\(entry)/stat")
            if let parent = stat.split(separator: ")").last?.split(separator: " ").dropFirst().first.flatMap({
                pid_t($0)
            }) {
                parents[pid] = parent
            }
            if TestNamespace.sameFile("/proc/\(entry)/ns/net", namespacePath) {
                owned.insert(pid)
                continue
            }
            let commandLine = Repo.read("/proc/\(entry)/cmdline").replacingOccurrences(of: "\0", with: " ")
            if commandLine.contains(directory + "/") { owned.insert(pid) }
        }
        var grown = true
        while grown {
            let children = parents.filter { owned.contains($0.value) && !owned.contains($0.key) }.keys
            grown = !children.isEmpty
            owned.formUnion(children)
        }
        return Array(owned)
    }
}
