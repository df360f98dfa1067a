import ArgumentParser
import Dispatch
import Foundation
import Logging
import PortcullisCompiler
import PortcullisWatch

struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Keep this host's rules in step with Docker as containers and networks come and go.",
        discussion: """
            Reads the daemon's inventory and applies the policy with it (as 'apply' does: same \
            generations, lock and guarantees), then follows the daemon's events (containers \
            started, stopped, removed; networks created, removed, connected, disconnected), \
            updates the inventory one event at a time and applies again at once (changes that \
            come during a sync are carried by the next one). Every --drift-check seconds it \
            checks whether someone else changed its rules, and puts them back. When the daemon \
            goes away the rules stay in place; the watcher retries with backoff and, once back, \
            reads everything again. One log line per sync says what changed and how long it took.

            The policy is read once: SIGHUP reads and checks it again, and syncs with it if it \
            checks; if not, its errors are logged and the running policy stays. SIGTERM (or \
            SIGINT) stops the watcher and leaves the rules in place. 'portcullis status' shows the running watcher \
            (STATE/watch.json); --metrics-file writes Prometheus text for node_exporter's \
            textfile collector. See docs/watch.md; contrib/systemd/portcullis-watch.service \
            runs it as a service.

            Examples:
              portcullis watch /etc/portcullis/host.policy
              portcullis watch host.policy --metrics-file /var/lib/node_exporter/portcullis.prom
            """)

    @OptionGroup var change: ChangeOptions

    @Option(help: "Write Prometheus text-format metrics here after every sync (atomically).", completion: .file())
    var metricsFile: String?

    @Option(
        name: .customLong("drift-check"),
        help: ArgumentHelp(
            "Check this often whether someone else changed the rules, and repair them (0: never).",
            valueName: "seconds"))
    var driftCheck: Double = 5

    func validate() throws {
        if let inventory = change.bound.inventory, inventory != "docker" {
            throw ValidationError("watch follows the daemon: --inventory is docker (the default) or left out")
        }
        guard driftCheck >= 0, driftCheck.isFinite else {
            throw ValidationError("--drift-check is a number of seconds, 0 or more")
        }
    }

    func run() throws {
        let logger = watchLogger(verbose: change.kernel.verbose)
        // The inventory is the daemon's, always: each sync gives the one the watcher keeps.
        var options = change
        options.bound.inventory = "docker"
        let watch = WatchRequest(
            change: try options.request(), dockerHost: change.bound.dockerHost, metricsFile: metricsFile,
            configuration: WatchConfiguration(
                driftInterval: driftCheck > 0 ? .milliseconds(Int64(driftCheck * 1000)) : nil))
        let state = change.kernel.state
        try execute { application in
            try waitFor {
                try await application.runWatch(watch, state: state, logger: logger) { watcher in
                    handleSignals(reload: [SIGHUP], stop: [SIGTERM, SIGINT], watcher: watcher)
                }
            }
        }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the state of the watcher that runs with a state directory.",
        discussion: """
            Prints STATE/watch.json, which 'portcullis watch' rewrites after every sync: its pid, \
            policy, daemon, whether it is connected, the last sync (what changed, how long, \
            whether it failed), counts and the last error. Exits 0 when that watcher is running \
            (its pid is alive and is the same portcullis process), 3 when no watcher runs (none \
            ever did, it stopped, or it died), 2 when the file cannot be read.
            """)

    @Option(help: "The watcher's state directory.", completion: .directory)
    var stateDir = "/var/lib/portcullis"

    func run() throws {
        var running = false
        try execute {
            running = try $0.runStatus(state: StateAccess(directory: stateDir))
            return .clean
        }
        if !running { throw ExitCode(3) }
    }
}

/// swift-log to stderr at info (one line per sync), debug with --verbose; the kernel's own
/// lines stay at warning unless --verbose (see `syncFunction`).
func watchLogger(verbose: Bool) -> Logger {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = verbose ? .debug : .info
        return handler
    }
    var logger = Logger(label: "portcullis.watch")
    logger.logLevel = verbose ? .debug : .info
    return logger
}

/// Runs an async run to its end from a synchronous command.
func waitFor(_ body: @escaping @Sendable () async throws -> RunStatus) throws -> RunStatus {
    let result = ResultBox()
    let done = DispatchSemaphore(value: 0)
    Task {
        do { result.value = .success(try await body()) } catch { result.value = .failure(error) }
        done.signal()
    }
    done.wait()
    return try result.value!.get()
}

final class ResultBox: @unchecked Sendable {
    var value: Result<RunStatus, any Error>?
}

/// Signals become the watcher's reload and stop; their default actions are turned off first.
func handleSignals(reload: [Int32], stop: [Int32], watcher: Watcher) {
    for (signals, action) in [(reload, watcher.reload), (stop, watcher.stop)] as [([Int32], @Sendable () -> Void)] {
        for number in signals {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler(handler: action)
            source.resume()
            signalSources.withLock { $0.append(source) }
        }
    }
}

/// Kept alive as long as the process: a cancelled or released source stops delivering.
let signalSources = NSLockedArray()

final class NSLockedArray: @unchecked Sendable {
    private let lock = NSLock()
    private var sources: [any DispatchSourceSignal] = []
    func withLock(_ body: (inout [any DispatchSourceSignal]) -> Void) { lock.withLock { body(&sources) } }
}
