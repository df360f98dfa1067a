import ArgumentParser
import Foundation
import Logging
import PortcullisCompiler
import PortcullisKernel
import PortcullisRender

/// Options shared by the commands that change the kernel's ruleset.
struct KernelOptions: ParsableArguments {
    @Option(help: "Where generations, the lock and the confirmation marker live.")
    var stateDir = "/var/lib/portcullis"

    @Option(help: "Seconds to wait for another apply or rollback to finish.")
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

struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compile a policy and apply it to this host's kernel, atomically.",
        discussion: """
            nftables backends go through libnftables as one transaction; iptables goes through
            iptables-restore, one transaction per table, after the whole input passed
            'iptables-restore --test'. Only what the layout owns changes: for the Docker layouts on
            iptables, Docker's chains and the rules Portcullis wrote in built-in chains (everyone
            else's chains and rules are carried over with their counters); on nftables, the
            layout's tables (a table Portcullis did not write is refused unless --take-over).

            Each apply is a generation in the state directory with a snapshot of what it replaced;
            'portcullis rollback' undoes the latest. Applying the same policy twice changes nothing
            the second time. With --confirm N the new ruleset must be confirmed within N seconds
            ('y' on the terminal, or 'portcullis confirm' from another shell) or it is rolled back:
            use it when a bad rule could cut off your own connection.

            Examples:
              portcullis apply policies/web-stack.policy
              portcullis apply policies/web-stack.policy --backend nftables --confirm 60
              portcullis confirm
            """)

    @Argument(help: "The policy file.")
    var policy: String

    @OptionGroup var options: LayoutOptions
    @OptionGroup var kernel: KernelOptions

    @Option(help: "Seconds to wait for confirmation before rolling back.")
    var confirm: Int?

    @Flag(help: "Replace owned tables even if they hold rules Portcullis did not write (saved first).")
    var takeOver = false

    func run() throws {
        let logger = kernel.logger()
        let compiler = Compiler()
        let (checked, sources) = try compiler.check(policy).get(orExit: fail)
        let (layout, backend) = try compiler.resolve(layout: options.layout, backend: options.backend, policy: checked)
            .get(orExit: fail)
        let ruleset = try compiler.lower(checked, sources: sources, layout: layout, backend: backend).get(orExit: fail)
        var files = try compiler.render(ruleset, layout: layout, backend: backend).get(orExit: fail)
        if backend == .nftables && ruleset.tables.contains(where: { !$0.sets.isEmpty }) {
            // The JSON twin is what the next apply compares with to send only changed elements;
            // without sets no change can be made of elements alone.
            files += try compiler.render(ruleset, layout: layout, backend: .nftablesJSON).get(orExit: fail)
        }
        guard Host.hasNetAdmin else {
            printError("error: applying a ruleset needs CAP_NET_ADMIN; nothing was changed")
            throw ExitCode(2)
        }
        let store = StateStore(directory: kernel.stateDir)
        let outcome: ApplyOutcome
        let lock: StateLock
        do {
            try store.prepare()
            lock = try StateLock(store: store, timeout: kernel.lockTimeout)
            outcome = try Applier(store: store, logger: logger).apply(
                files: Dictionary(uniqueKeysWithValues: files.map { ($0.fileExtension, $0.text) }),
                backend: backend.rawValue, layout: layout.name, policy: policy, takeOver: takeOver)
        } catch {
            throw kernelFailure(error, files: files)
        }
        defer { withExtendedLifetime(lock) {} }
        switch outcome {
        case .unchanged(let generation):
            print("no changes: generation \(generation) is already applied")
        case .applied(let generation, let change, let seconds):
            let took = String(format: "%.1f ms in the kernel", seconds * 1000)
            switch change {
            case .replaced:
                print(
                    "applied generation \(generation) (\(layout.name), \(backend.rawValue)): replaced the ruleset, \(took)"
                )
            case .elements(let added, let removed):
                print(
                    "applied generation \(generation) (\(layout.name), \(backend.rawValue)): only set elements changed, \(added) added and \(removed) removed in one transaction, \(took)"
                )
            }
            if let confirm { try awaitConfirmation(generation, seconds: confirm, store: store, logger: logger) }
        }
    }

    /// Waits for `y` on a terminal or `portcullis confirm`; rolls back when time runs out.
    func awaitConfirmation(_ generation: Int, seconds: Int, store: StateStore, logger: Logger) throws {
        try store.markPending(generation)
        let interactive = isatty(0) == 1
        print(
            "keeping generation \(generation) only if confirmed within \(seconds) s: "
                + (interactive ? "type y and Enter, or " : "")
                + "run 'portcullis confirm --state-dir \(store.directory)'")
        let deadline = Date().addingTimeInterval(Double(seconds))
        while Date() < deadline {
            if store.pendingGeneration != generation {
                print("confirmed generation \(generation)")
                return
            }
            if interactive {
                var descriptor = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
                if poll(&descriptor, 1, 200) > 0, let line = readLine(), line.lowercased().hasPrefix("y") {
                    store.clearPending()
                    print("confirmed generation \(generation)")
                    return
                }
            } else {
                usleep(200_000)
            }
        }
        store.clearPending()
        do {
            _ = try Applier(store: store, logger: logger).rollback()
        } catch {
            throw kernelFailure(error)
        }
        printError("no confirmation within \(seconds) s: generation \(generation) was rolled back")
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
