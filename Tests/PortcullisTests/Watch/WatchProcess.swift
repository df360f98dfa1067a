import Foundation

/// `portcullis watch ARGUMENTS` running inside a test daemon's namespace (`ip netns exec` execs
/// it: the process is the watcher itself, so its PID is the watcher's), stdout and stderr in
/// `log`. Killed by PID if still running when released.
final class WatchProcess {
    let process = Process()
    let log: String

    init(_ daemon: DockerDaemon, _ arguments: [String], log: String) throws {
        self.log = log
        guard FileManager.default.createFile(atPath: log, contents: nil) else {
            throw NamespaceError(message: "cannot create \(log)")
        }
        process.executableURL = URL(fileURLWithPath: "/usr/bin/ip")
        process.arguments = ["netns", "exec", daemon.namespace.name, CommandLineTests.binary, "watch"] + arguments
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardError = output
        process.standardOutput = output
        try process.run()
    }

    deinit {
        if process.isRunning { kill9() }
    }

    var pid: pid_t { process.processIdentifier }
    var text: String { Repo.read(log) }
    func logged(_ line: String) -> Bool { text.contains(line) }

    /// SIGKILL, as a crash or the OOM killer would end it.
    func kill9() {
        kill(pid, SIGKILL)
        process.waitUntilExit()
    }
}
