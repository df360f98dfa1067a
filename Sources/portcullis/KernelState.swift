import ArgumentParser
import Foundation
import Logging
import PortcullisKernel
import PortcullisRender

/// Options shared by the commands that change the kernel's ruleset or the state directory.
struct KernelOptions: ParsableArguments {
    @Option(help: "Where generations, the lock and the confirmation record live.", completion: .directory)
    var stateDir = "/var/lib/portcullis"

    @Option(help: "Seconds to wait for another portcullis command on the same state directory to finish.")
    var lockTimeout: Double = 30

    @Flag(name: .shortAndLong, help: "Show what is sent to the kernel.")
    var verbose = false

    func logger() -> Logger {
        let level: Logger.Level = verbose ? .debug : .warning
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: "portcullis")
    }

    /// Runs `body` holding the state lock, after settling what an earlier run left unfinished
    /// (each settlement is reported on stderr). Kernel and state errors exit 2. Only `apply`
    /// (`creating`) makes a state directory; the others find nothing to settle without one.
    func withSettledState<T>(
        logger: Logger, files: [RenderedFile] = [], creating: Bool = false, _ body: (Applier) throws -> T
    ) throws -> T {
        let store = StateStore(directory: stateDir)
        do {
            guard creating || store.exists else { return try body(Applier(store: store, logger: logger)) }
            try store.prepare()
            let lock = try StateLock(store: store, timeout: lockTimeout)
            defer { withExtendedLifetime(lock) {} }
            let applier = Applier(store: store, logger: logger)
            for settlement in try applier.settle() { printError("note: \(settlement)") }
            return try body(applier)
        } catch let exit as ExitCode {
            throw exit
        } catch {
            throw kernelFailure(error, files: files)
        }
    }
}

/// Exit 2 with the kernel's message, and the policy line behind the rejected rule if known.
func kernelFailure(_ error: Error, files: [RenderedFile] = []) -> ExitCode {
    var message = "error: \(error)"
    let lines = "\(error)".split(separator: "\n").map {
        $0.trimmingCharacters(in: .whitespaces).replacing(#/^\[\d+:\d+\] /#, with: "")
    }
    if let origin = lines.lazy.compactMap({ line in files.lazy.compactMap { $0.provenance(ofRuleText: line) }.first })
        .first
    {
        message += "\n    the rejected rule comes from \(origin)"
    }
    printError(message)
    return ExitCode(2)
}

/// Starts `portcullis confirm-deadline` for a pending confirmation, detached from this
/// process and its terminal; its output goes to STATE/watchdog.log.
struct DeadlineWatchdog: ConfirmationWatchdog {
    func start(for pending: PendingConfirmation, store: StateStore) throws(StateError) {
        let executable =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "/proc/self/exe"
        _ = try spawnDetached(
            executable,
            [
                "confirm-deadline", "--state-dir", store.directory, "--generation", String(pending.generation),
                "--token", pending.token,
                // Another command may hold the lock a while; the deadline waits for it, never gives up.
                "--lock-timeout", "86400",
            ], log: store.directory + "/watchdog.log")
    }
}

/// The watchdog behind `apply --confirm`: waits for the deadline of one pending confirmation
/// and rolls the generation back then, unless it was confirmed or rolled back first.
struct ConfirmDeadline: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "confirm-deadline",
        abstract: "Roll back an unconfirmed generation at its deadline (started by 'apply --confirm').",
        shouldDisplay: false)

    @OptionGroup var kernel: KernelOptions
    @Option var generation: Int
    @Option var token: String

    func run() throws {
        signal(SIGHUP, SIG_IGN)
        let logger = kernel.logger()
        let store = StateStore(directory: kernel.stateDir)
        while let pending = Applier(store: store, logger: logger).pending(), pending.token == token {
            let remaining = pending.deadlineDate.timeIntervalSinceNow
            if remaining <= 0 {
                try kernel.withSettledState(logger: logger) { _ in }
                return
            }
            usleep(useconds_t(min(remaining, 0.2) * 1_000_000))
        }
    }
}
