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

    /// Stops the daemon by PID (its containers stop with it) and starts it again on the same
    /// root, as a host's daemon restarts: it programs its rules again.
    func restart(flags: [String] = []) throws {
        if let process = daemon, process.isRunning {
            process.terminate()
            for _ in 0..<600 where process.isRunning { usleep(100_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        daemon = nil
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
        for signal in [SIGTERM, SIGKILL] {
            let leftovers = ownedProcesses()
            if leftovers.isEmpty { break }
            for pid in leftovers { kill(pid, signal) }
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
    /// names its private directory. Never chosen by name.
    private func ownedProcesses() -> [pid_t] {
        let namespacePath = "/run/netns/\(namespace.name)"
        let me = getpid()
        return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
            guard let pid = pid_t(entry), pid != me else { return nil }
            if TestNamespace.sameFile("/proc/\(entry)/ns/net", namespacePath) { return pid }
            let commandLine = Repo.read("/proc/\(entry)/cmdline").replacingOccurrences(of: "\0", with: " ")
            return commandLine.contains(directory + "/") ? pid : nil
        }
    }
}
