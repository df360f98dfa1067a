import ArgumentParser
import Foundation
import Logging
import PortcullisCompiler
import PortcullisKernel

/// Options shared by the commands that change the kernel's ruleset or the state directory.
struct KernelOptions: ParsableArguments {
    @Option(help: "Where generations, the lock and the confirmation record live.", completion: .directory)
    var stateDir = "/var/lib/portcullis"

    @Option(help: "Seconds to wait for another portcullis command on the same state directory to finish.")
    var lockTimeout: Double = 30

    @Flag(name: .shortAndLong, help: "Show what is sent to the kernel.")
    var verbose = false

    var state: StateAccess { StateAccess(directory: stateDir, lockTimeout: lockTimeout) }

    /// swift-log to stderr: warnings, or with --verbose everything sent to the kernel.
    func logger() -> Logger {
        let level: Logger.Level = verbose ? .debug : .warning
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: "portcullis")
    }
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
        try execute { try $0.runConfirmationDeadline(state: kernel.state, token: token, logger: logger) }
    }
}
