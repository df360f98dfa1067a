import Foundation
import JanssonKit
import Logging
import PortcullisKernel
import PortcullisRender
import PortcullisSyntax

/// The state directory a kernel command works with, and how long it waits for the lock.
public struct StateAccess: Sendable {
    public var directory: String
    public var lockTimeout: Double

    public init(directory: String = "/var/lib/portcullis", lockTimeout: Double = 30) {
        self.directory = directory
        self.lockTimeout = lockTimeout
    }

    var store: StateStore { StateStore(directory: directory) }
}

/// What `plan` and `apply` are asked: a policy for this host, and what the change may do.
public struct ChangeRequest: Sendable {
    public var policy: String
    public var layout: String?
    public var backend: String?
    public var takeOver: Bool
    public var prune: Bool
    /// Where the containers' addresses, publishes and group members come from when the policy
    /// leaves them to the host (nil: the policy pins everything).
    public var inventory: InventorySource?
    /// Leave Docker's own rules to the running daemon and own only the place it reserves for
    /// users (`DOCKER-USER`, or the `portcullis-user` table).
    public var alongsideDocker: Bool
    /// The policy already read from `policy` (the watcher's running policy): compiled instead
    /// of the file, which may have been edited since; diagnostics still name `policy`'s files.
    public var loaded: LoadedPolicy?

    public init(
        policy: String, layout: String? = nil, backend: String? = nil, takeOver: Bool = false, prune: Bool = false,
        inventory: InventorySource? = nil, alongsideDocker: Bool = false
    ) {
        self.policy = policy
        self.layout = layout
        self.backend = backend
        self.takeOver = takeOver
        self.prune = prune
        self.inventory = inventory
        self.alongsideDocker = alongsideDocker
    }
}

/// How `apply --confirm` waits: for `y` on a terminal (`answer`, polled; nil when there is no
/// terminal), for `portcullis confirm`, or for the deadline.
public struct ConfirmationWait {
    public let seconds: Int
    /// Return at once and leave the deadline to the watchdog.
    public let noWait: Bool
    public let watchdog: any ConfirmationWatchdog
    public let answer: (() -> Bool)?

    public init(seconds: Int, noWait: Bool, watchdog: any ConfirmationWatchdog, answer: (() -> Bool)?) {
        self.seconds = seconds
        self.noWait = noWait
        self.watchdog = watchdog
        self.answer = answer
    }
}

/// The runs of the kernel commands: plan, apply, rollback, confirm and the confirmation
/// deadline. Each settles what an earlier run left under the state lock first (see `Applier`).
extension Application {
    /// Runs `body` holding the state lock, after settling what an earlier run left unfinished
    /// (each settlement is a note). Only `apply` (`creating`) makes a state directory; the
    /// others find nothing to settle without one. A kernel or state error becomes a failure
    /// naming the policy line behind a rejected rule when `files` can tell.
    func withSettledState<T>(
        _ state: StateAccess, logger: Logger, files: [RenderedFile] = [], creating: Bool = false,
        _ body: (Applier) throws -> T
    ) throws -> T {
        let store = state.store
        do {
            guard creating || store.exists else { return try body(Applier(store: store, logger: logger)) }
            try store.prepare()
            let lock = try StateLock(store: store, timeout: state.lockTimeout)
            defer { withExtendedLifetime(lock) {} }
            let applier = Applier(store: store, logger: logger)
            for settlement in try applier.settle() { console.note("note: \(settlement)") }
            return try body(applier)
        } catch let failure as CompileFailure {
            throw failure
        } catch {
            throw CompileFailure.usage(Self.kernelMessage(error, files: files))
        }
    }

    /// The kernel's message, with the policy line behind the rejected rule if known.
    static func kernelMessage(_ error: Error, files: [RenderedFile]) -> String {
        let lines = "\(error)".split(separator: "\n").map {
            $0.trimmingCharacters(in: .whitespaces).replacing(#/^\[\d+:\d+\] /#, with: "")
        }
        let origin = lines.lazy.compactMap { line in files.lazy.compactMap { $0.provenance(ofRuleText: line) }.first }
            .first
        return "\(error)" + (origin.map { "\n    the rejected rule comes from \($0)" } ?? "")
    }

    /// The policy compiled for the kernel, its warnings noted; a failure without CAP_NET_ADMIN.
    func compileForKernel(_ request: ChangeRequest, action: String) throws -> KernelInput {
        console.progress("compiling \(request.policy)")
        let compiled = try compiler.compileForKernel(
            request.policy, loaded: request.loaded, layout: request.layout, backend: request.backend,
            host: try request.inventory.map(hostInventory), alongsideDocker: request.alongsideDocker
        ).get()
        for warning in compiled.warnings { console.note(warning) }
        guard Host.hasNetAdmin else {
            throw CompileFailure.usage(
                "\(action) needs CAP_NET_ADMIN to read the kernel's ruleset; nothing was changed")
        }
        return compiled
    }

    /// What `apply` would change, changing nothing: 0 nothing, 1 changes, failed when apply
    /// would refuse (terraform's -detailed-exitcode).
    public func runPlan(_ request: ChangeRequest, state: StateAccess, format: ReportFormat, logger: Logger) throws
        -> RunStatus
    {
        let compiled = try compileForKernel(request, action: "planning")
        console.progress("comparing with the kernel's rules")
        let (diff, cutOff, repairs) = try withSettledState(state, logger: logger, files: compiled.files) {
            try $0.plan(
                files: compiled.filesByExtension, backend: compiled.backend, takeOver: request.takeOver,
                knownNames: compiled.knownNames, scope: compiled.scope)
        }
        let refused = !cutOff.isEmpty && !request.prune
        switch format {
        case .json:
            console.output(Self.planJSON(diff, cutOff, compiled, refused: refused, repairs: repairs).rendered() + "\n")
        case .text:
            console.output(diff.text)
            for repair in repairs { console.output("repair: \(repair.planned)\n") }
            console.output(
                (diff.isEmpty
                    ? "no changes: the kernel already holds this ruleset"
                    : "plan (\(compiled.layout.name), \(compiled.backend.rawValue)"
                        + (compiled.alongside.map { ", alongside Docker: only \($0.placeName)" } ?? "")
                        + "): \(diff.summary)") + "\n")
        }
        if refused {
            console.note("error: apply would refuse: \(cutOff.refusal)")
            return .failed
        }
        if !cutOff.isEmpty {
            console.note(
                "warning: with --prune, the rules of \((cutOff.interfaces + cutOff.addresses).joined(separator: ", ")) are removed"
            )
        }
        return diff.isEmpty ? .clean : .findings
    }

    /// The plan as `portcullis.plan/1` JSON.
    static func planJSON(
        _ diff: RulesetDiff, _ cutOff: CutOff, _ compiled: KernelInput, refused: Bool, repairs: [JumpRepair] = []
    ) -> JSON {
        var members: [(String, JSON)] = [
            ("schema", .string("portcullis.plan/1")), ("layout", .string(compiled.layout.name)),
            ("backend", .string(compiled.backend.rawValue)), ("changed", .bool(!diff.isEmpty)),
        ]
        if let alongside = compiled.alongside { members.append(("alongside_docker", .string(alongside.placeName))) }
        if case .object(let report) = diff.json { members += report }
        if compiled.alongside != nil {
            members.append(("repairs", .array(repairs.map { .string($0.planned) })))
        }
        members.append(
            (
                "cut_off",
                .object([
                    ("interfaces", .array(cutOff.interfaces.map { .string($0) })),
                    ("addresses", .array(cutOff.addresses.map { .string($0) })), ("refused", .bool(refused)),
                ])
            ))
        return .object(members)
    }

    /// Applies a policy; with a confirmation, waits for it (or not) and reports how it ended:
    /// not confirmed in time is a finding (exit 1).
    public func runApply(
        _ request: ChangeRequest, state: StateAccess, confirmation: ConfirmationWait?, logger: Logger
    ) throws -> RunStatus {
        let compiled = try compileForKernel(request, action: "applying a ruleset")
        console.progress("applying to the kernel through \(compiled.backend.rawValue)")
        let outcome = try withSettledState(state, logger: logger, files: compiled.files, creating: true) {
            try $0.apply(
                files: compiled.filesByExtension, backend: compiled.backend, layout: compiled.layout.name,
                policy: request.policy, takeOver: request.takeOver, knownNames: compiled.knownNames,
                prune: request.prune, confirmation: confirmation.map { ($0.seconds, $0.watchdog) },
                scope: compiled.scope)
        }
        switch outcome {
        case .unchanged(let generation):
            console.output("no changes: generation \(generation) is already applied\n")
            return .clean
        case .applied(let generation, let kind, let diff, let seconds, let pending, let repairs):
            for repair in repairs { console.output("repaired: \(repair.applied)\n") }
            let how =
                switch kind {
                case .replaced:
                    "replaced \(compiled.alongside.map { $0.placeName } ?? "the ruleset") (\(diff.summary))"
                case .elements(let added, let removed):
                    "only set elements changed, \(added) added and \(removed) removed in one transaction"
                }
            let owned = compiled.alongside.map { ", alongside Docker: only \($0.placeName)" } ?? ""
            console.output(
                "applied generation \(generation) (\(compiled.layout.name), \(compiled.backend.rawValue)\(owned)): \(how), "
                    + String(format: "%.1f ms in the kernel", seconds * 1000) + "\n")
            guard let pending, let confirmation else { return .clean }
            if confirmation.noWait {
                console.output(
                    "generation \(generation) is rolled back at \(pending.deadlineDate) unless 'portcullis confirm \(generation) --state-dir \(state.directory)' comes first\n"
                )
                return .clean
            }
            return try awaitConfirmation(pending, confirmation, state: state, logger: logger)
        }
    }

    /// Waits for `y`, `portcullis confirm` or the deadline. The deadline is kept by the watchdog
    /// the apply started, so this process may die meanwhile; at the deadline it settles (or
    /// finds settled) the generation itself, under the state lock, and says how.
    func awaitConfirmation(
        _ pending: PendingConfirmation, _ wait: ConfirmationWait, state: StateAccess, logger: Logger
    ) throws -> RunStatus {
        console.output(
            "keeping generation \(pending.generation) only if confirmed within \(wait.seconds) s: "
                + (wait.answer == nil ? "" : "type y and Enter, or ")
                + "run 'portcullis confirm \(pending.generation) --state-dir \(state.directory)'\n")
        let store = state.store
        func stillWaiting() -> Bool { Applier(store: store, logger: logger).pending()?.token == pending.token }
        while stillWaiting() && Date() < pending.deadlineDate {
            guard let answer = wait.answer else {
                usleep(100_000)
                continue
            }
            if answer() {
                _ = try withSettledState(state, logger: logger) { try $0.confirm(generation: pending.generation) }
            }
        }
        if stillWaiting() { try withSettledState(state, logger: logger) { _ in } }
        // Confirmed: the generation is still the latest; rolled back: it is gone.
        if store.generationNumbers().last == pending.generation {
            console.output("confirmed generation \(pending.generation)\n")
            return .clean
        }
        console.note("no confirmation within \(wait.seconds) s: generation \(pending.generation) was rolled back")
        return .findings
    }

    /// Undoes the latest generation; nothing to undo is exit 1.
    public func runRollback(state: StateAccess, force: Bool, logger: Logger) throws -> RunStatus {
        switch try withSettledState(state, logger: logger, { try $0.rollback(force: force) }) {
        case .nothingToRollBack:
            console.note("nothing to roll back: no generation in \(state.directory)")
            return .findings
        case .rolledBack(let from, let to):
            console.output(
                "rolled back generation \(from)"
                    + (to.map { "; generation \($0) is current" }
                        ?? "; the kernel holds what it held before Portcullis' first apply") + "\n")
            return .clean
        }
    }

    /// Element commands for the latest generation's nftables sets, in one transaction under the
    /// state lock, outside any generation (`watch` between full syncs). The kernel's seconds and
    /// the ruleset generation the commit left.
    public func runElementBatch(_ batch: String, state: StateAccess, logger: Logger) throws -> (
        seconds: Double, kernelGeneration: UInt32?
    ) {
        try withSettledState(state, logger: logger) { try $0.applyElements(batch) }
    }

    /// What others changed in the rules the latest generation applied, under the state lock;
    /// nil when nothing (`watch` asks this between events, to repair such changes).
    public func ownedRulesChanged(state: StateAccess, logger: Logger) throws -> String? {
        try withSettledState(state, logger: logger) { try $0.changes() }
    }

    /// Confirms the generation waiting (`generation`, when given, must be it); nothing
    /// waiting, or too late, is exit 1.
    public func runConfirm(state: StateAccess, generation: Int?, logger: Logger) throws -> RunStatus {
        switch try withSettledState(state, logger: logger, { try $0.confirm(generation: generation) }) {
        case .confirmed(let number):
            console.output("confirmed generation \(number)\n")
            return .clean
        case .nothingPending:
            console.note("nothing is waiting for confirmation in \(state.directory)")
            return .findings
        }
    }

    /// The watchdog's run: waits for the deadline of the confirmation `token` names and settles
    /// then, unless it was confirmed or rolled back first.
    public func runConfirmationDeadline(state: StateAccess, token: String, logger: Logger) throws -> RunStatus {
        let store = state.store
        while let pending = Applier(store: store, logger: logger).pending(), pending.token == token {
            let remaining = pending.deadlineDate.timeIntervalSinceNow
            if remaining <= 0 {
                try withSettledState(state, logger: logger) { _ in }
                break
            }
            usleep(useconds_t(min(remaining, 0.2) * 1_000_000))
        }
        return .clean
    }
}
