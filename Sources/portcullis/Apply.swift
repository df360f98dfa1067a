import ArgumentParser
import Foundation
import Logging
import PortcullisCompiler
import PortcullisKernel
import PortcullisRender

struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compile a policy and apply it to this host's kernel, atomically.",
        discussion: """
            nftables backends go through libnftables as one transaction; iptables goes through \
            iptables-restore after the whole input passed 'iptables-restore --test'. Only what the \
            layout owns changes: for the Docker layouts on iptables, Docker's chains and the rules \
            Portcullis wrote in built-in chains (everyone else's chains and rules are carried over \
            with their counters); on nftables, the layout's tables (a table Portcullis did not \
            write is refused unless --take-over).

            Each apply is a generation in the state directory, recorded with a snapshot of what \
            it replaces before the kernel is touched; 'portcullis rollback' loads that snapshot \
            back. A run killed at any point is settled by the next command: the interrupted \
            generation is undone. Applying the same policy twice changes nothing the second time. \
            A policy that would remove the rules of bridges or containers it does not name (an \
            empty policy, a forgotten network) is refused unless --prune. 'portcullis plan' shows \
            the change first.

            With --confirm N the new ruleset must be confirmed within N seconds ('y' on the \
            terminal, or 'portcullis confirm' from another shell) or it is rolled back, even if \
            this process or its terminal dies meanwhile: use it when a bad rule could cut off your \
            own connection. Exits 0 when applied (or confirmed), 1 when not confirmed in time, 2 \
            on an error (nothing changed).

            Examples:
              portcullis plan policies/web-stack.policy
              portcullis apply policies/web-stack.policy --confirm 60
              portcullis confirm 3
            """)

    @OptionGroup var change: ChangeOptions

    @Option(help: "Seconds to wait for confirmation before rolling back.")
    var confirm: Int?

    @Flag(help: "Show what would change and change nothing (the same as 'portcullis plan').")
    var dryRun = false

    @Flag(
        help:
            "With --confirm: return at once and leave the deadline to the watchdog (for automation that confirms in a later step)."
    )
    var noWait = false

    var kernel: KernelOptions { change.kernel }

    func run() throws {
        if dryRun { return try Plan.report(change, format: .text) }
        let compiled = try change.compile(for: "applying a ruleset")
        let logger = kernel.logger()
        let outcome = try kernel.withSettledState(logger: logger, files: compiled.files, creating: true) { applier in
            try applier.apply(
                files: compiled.filesByExtension, backend: compiled.backend, layout: compiled.layout.name,
                policy: change.policy, takeOver: change.takeOver, knownNames: compiled.knownNames, prune: change.prune,
                confirmation: confirm.map { ($0, DeadlineWatchdog()) })
        }
        switch outcome {
        case .unchanged(let generation):
            print("no changes: generation \(generation) is already applied")
        case .applied(let generation, let kind, let diff, let seconds, let pending):
            let took = String(format: "%.1f ms in the kernel", seconds * 1000)
            let how =
                switch kind {
                case .replaced: "replaced the ruleset (\(diff.summary))"
                case .elements(let added, let removed):
                    "only set elements changed, \(added) added and \(removed) removed in one transaction"
                }
            print(
                "applied generation \(generation) (\(compiled.layout.name), \(compiled.backend.rawValue)): \(how), \(took)"
            )
            guard let pending else { return }
            if noWait {
                print(
                    "generation \(generation) is rolled back at \(pending.deadlineDate) unless 'portcullis confirm \(generation) --state-dir \(kernel.stateDir)' comes first"
                )
                return
            }
            try awaitConfirmation(pending, logger: logger)
        }
    }

    /// Waits for `y` on a terminal, `portcullis confirm` or the deadline. The deadline is kept
    /// by the watchdog the apply started, so this process may die meanwhile; at the deadline it
    /// settles (or finds settled) the generation itself, under the state lock, and says how.
    func awaitConfirmation(_ pending: PendingConfirmation, logger: Logger) throws {
        let interactive = isatty(0) == 1
        print(
            "keeping generation \(pending.generation) only if confirmed within \(confirm ?? 0) s: "
                + (interactive ? "type y and Enter, or " : "")
                + "run 'portcullis confirm \(pending.generation) --state-dir \(kernel.stateDir)'")
        let store = StateStore(directory: kernel.stateDir)
        func stillWaiting() -> Bool { Applier(store: store, logger: logger).pending()?.token == pending.token }
        while stillWaiting() && Date() < pending.deadlineDate {
            guard interactive else {
                usleep(100_000)
                continue
            }
            var descriptor = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
            if poll(&descriptor, 1, 100) > 0, let line = readLine(), line.lowercased().hasPrefix("y") {
                _ = try kernel.withSettledState(logger: logger) { try $0.confirm(generation: pending.generation) }
            }
        }
        if stillWaiting() { _ = try kernel.withSettledState(logger: logger) { _ in } }
        // Confirmed: the generation is still the latest; rolled back: it is gone.
        if store.generationNumbers().last == pending.generation {
            print("confirmed generation \(pending.generation)")
            return
        }
        printError("no confirmation within \(confirm ?? 0) s: generation \(pending.generation) was rolled back")
        throw ExitCode(1)
    }
}

extension Result where Failure == CompileFailure {
    /// The value, or exit 2 after printing the failure.
    func get(orExit handler: (CompileFailure) -> ExitCode) throws -> Success {
        switch self {
        case .success(let value): return value
        case .failure(let failure): throw handler(failure)
        }
    }
}
