import Foundation
import Logging
import NftablesKit
import PortcullisRender

/// What `apply` did.
public enum ApplyOutcome: Sendable, Equatable {
    case unchanged(generation: Int)
    /// `diff`: what changed. `kernelSeconds`: how long the kernel transaction itself took.
    /// `pending`: the deadline by which it must be confirmed, when one was asked for.
    /// `repairs`: jumps into the owned chain put back first (`--alongside-docker`).
    case applied(
        generation: Int, change: AppliedChange, diff: RulesetDiff, kernelSeconds: Double,
        pending: PendingConfirmation?, repairs: [JumpRepair] = [])
}

/// What `rollback` did.
public enum RollbackOutcome: Sendable, Equatable {
    /// Generation `from` was undone; `to` is now current (nil: no generation of Portcullis is
    /// left, and the kernel holds what it held before the first).
    case rolledBack(from: Int, to: Int?)
    case nothingToRollBack
}

/// What `confirm` did.
public enum ConfirmOutcome: Sendable, Equatable {
    case confirmed(generation: Int)
    case nothingPending
}

/// Something an earlier run left unfinished, settled at the start of a command.
public enum Settlement: Sendable, Equatable, CustomStringConvertible {
    /// A run was killed while it changed the kernel; the generation it was applying (or
    /// rolling back) was undone, so the kernel holds what it held before that generation.
    case interrupted(operation: StateStore.Journal.Operation, generation: Int)
    /// A confirmation's deadline passed: the generation was rolled back.
    case expired(generation: Int)
    /// A confirmation record that could not be settled here, and was removed.
    case discarded(generation: Int?, reason: String)

    public var description: String {
        switch self {
        case .interrupted(.apply, let generation):
            "an apply of generation \(generation) was interrupted; it was undone and the ruleset before it is back"
        case .interrupted(.rollback, let generation):
            "a rollback of generation \(generation) was interrupted; it was completed"
        case .expired(let generation):
            "generation \(generation) was not confirmed by its deadline and was rolled back"
        case .discarded(let generation, let reason):
            "the confirmation record" + (generation.map { " of generation \($0)" } ?? "") + " was discarded: \(reason)"
        }
    }
}

/// Applies rendered rulesets to the kernel of the current network namespace, atomically and
/// within Portcullis' ownership rules, recording each change as a generation in the state
/// directory so that it can be rolled back. Every public method expects the caller to hold the
/// state lock.
///
/// The order of an apply is what makes it safe to kill at any point: record the generation
/// (applied files and the snapshot of what they replace) durably, write the journal, change
/// the kernel, record what the kernel holds after, remove the journal. A journal found later
/// means the kernel may hold part of a change; `settle` puts the snapshot back.
public struct Applier {
    public let store: StateStore
    public let logger: Logger

    public init(store: StateStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    func backend(for backend: Backend, scope: OwnershipScope = .layout) -> any KernelBackend {
        switch backend {
        case .iptables: IptablesBackend(logger: logger, scope: scope)
        case .nftables: NftablesBackend(logger: logger, json: false)
        case .nftablesJSON: NftablesBackend(logger: logger, json: true)
        }
    }

    /// Finishes what an earlier run left: undoes a generation whose apply or rollback was
    /// interrupted, and rolls back a generation whose confirmation deadline has passed.
    public func settle(now: Date = Date()) throws -> [Settlement] {
        var settled: [Settlement] = []
        if let journal = try store.journal() {
            if store.generationNumbers().contains(journal.generation) {
                try undo(try store.load(journal.generation))
            }
            try store.endJournal()
            settled.append(.interrupted(operation: journal.operation, generation: journal.generation))
        }
        switch store.pending() {
        case .none:
            break
        case .damaged:
            // Unreadable: its deadline is unknown, so it is treated as passed (a confirmation
            // exists to roll back unless someone said yes).
            if let latest = try store.latest() { try undo(latest) }
            try store.clearPending()
            settled.append(
                .discarded(generation: nil, reason: "it could not be read, so the latest generation was rolled back"))
        case .waiting(let pending):
            if pending.bootID != PendingConfirmation.currentBootID {
                try store.clearPending()
                settled.append(.discarded(generation: pending.generation, reason: PendingConfirmation.rebootReason))
            } else if pending.namespace != PendingConfirmation.currentNamespace {
                break  // the watchdog in that namespace settles it
            } else if store.generationNumbers().last != pending.generation {
                try store.clearPending()
                settled.append(
                    .discarded(generation: pending.generation, reason: "that generation is no longer applied"))
            } else if pending.hasExpired(at: now) {
                let generation = try store.load(pending.generation)
                if let changes = try backend(for: generation.backend, scope: generation.scope).changes(
                    since: generation)
                {
                    logger.warning("rolling back at the confirmation deadline although \(changes)")
                }
                try undo(generation)
                try store.clearPending()
                settled.append(.expired(generation: pending.generation))
            }
        }
        return settled
    }

    /// The confirmation an apply is waiting for, if one is (after `settle`).
    public func pending() -> PendingConfirmation? {
        if case .waiting(let pending) = store.pending() { return pending }
        return nil
    }

    /// Applies `files` (rendered by `backend` for `layout`). With `confirmation`, the new
    /// generation is rolled back at `confirmation.seconds` from now unless `confirm` is called
    /// first; `watchdog` is started before the kernel changes, so that this holds even if this
    /// process dies. `scope` is what the generation owns (recorded with it for rollback).
    public func apply(
        files: [String: String], backend kind: Backend, layout: String, policy: String, takeOver: Bool,
        knownNames: Set<String> = [], prune: Bool = false,
        confirmation: (seconds: Int, watchdog: any ConfirmationWatchdog)? = nil, scope: OwnershipScope = .layout
    ) throws -> ApplyOutcome {
        if let pending = pending() {
            throw ApplyError(
                message:
                    "generation \(pending.generation) is waiting for confirmation until \(pending.deadlineDate); run 'portcullis confirm' or 'portcullis rollback' first"
            )
        }
        let (previous, backend, plan) = try planned(files: files, backend: kind, takeOver: takeOver, scope: scope)
        if plan.isEmpty, let previous {
            logger.info("no changes: the kernel already holds generation \(previous.number)")
            return .unchanged(generation: previous.number)
        }
        let cutOff = Self.cutOff(plan.diff, known: knownNames, scope: scope)
        if !cutOff.isEmpty && !prune { throw ApplyError(message: cutOff.refusal) }
        let generation = try store.record(
            backend: kind, layout: layout, policy: policy, applied: files, before: plan.before,
            createdTables: plan.createdTables, scope: scope)
        var pending: PendingConfirmation?
        do {
            if let confirmation {
                let waiting = PendingConfirmation(generation: generation.number, seconds: confirmation.seconds)
                try store.writePending(waiting)
                pending = waiting
                try confirmation.watchdog.start(for: waiting, store: store)
            }
            try store.beginJournal(.init(operation: .apply, generation: generation.number))
        } catch {
            if pending != nil { try? store.clearPending() }
            try? store.discard(generation.number)
            throw error
        }
        let started = DispatchTime.now()
        do {
            try plan.commit()
        } catch let rejection {
            // Put back what a commit of several transactions may have changed, then forget
            // the generation; the journal stays if even that fails, for the next command.
            if !plan.atomic {
                do { try undo(generation) } catch {
                    throw ApplyError(
                        message:
                            "\(rejection); putting the snapshot back failed too (\(error)); the next command tries again"
                    )
                }
            }
            try? store.endJournal()
            if pending != nil { try? store.clearPending() }
            try? store.discard(generation.number)
            throw rejection
        }
        let kernelSeconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
        do {
            let after = try plan.after ?? backend.after(generation)
            _ = try store.complete(
                generation, after: after,
                kernelGeneration: backend is NftablesBackend ? RulesetGeneration.current() : nil)
        } catch {
            // The kernel changed but the change cannot be recorded: put the old ruleset back
            // rather than run with a generation that cannot be rolled back.
            try undo(generation)
            try? store.endJournal()
            if pending != nil { try? store.clearPending() }
            throw ApplyError(
                message:
                    "\(error); the kernel was changed and then put back as it was before generation \(generation.number)"
            )
        }
        try store.endJournal()
        logger.info("applied generation \(generation.number) (\(layout), \(kind.rawValue))")
        return .applied(
            generation: generation.number, change: plan.change, diff: plan.diff, kernelSeconds: kernelSeconds,
            pending: pending, repairs: plan.repairs)
    }

    /// What the change would cut off. Alongside Docker nothing can be: Docker's own rules for
    /// every bridge and container stay, whatever the owned chain loses.
    static func cutOff(_ diff: RulesetDiff, known: Set<String>, scope: OwnershipScope) -> CutOff {
        scope == .layout ? CutOff(diff, known: known) : CutOff(RulesetDiff(), known: [])
    }

    /// What `apply` would change, without changing anything: the diff, and the bridges and
    /// addresses it would cut off. Throws what `apply` would refuse with.
    /// `repairs`: the jumps into the owned chain apply would put back first.
    public func plan(
        files: [String: String], backend kind: Backend, takeOver: Bool, knownNames: Set<String>,
        scope: OwnershipScope = .layout
    ) throws -> (diff: RulesetDiff, cutOff: CutOff, repairs: [JumpRepair]) {
        let plan = try planned(files: files, backend: kind, takeOver: takeOver, scope: scope).plan
        return (plan.diff, Self.cutOff(plan.diff, known: knownNames, scope: scope), plan.repairs)
    }

    /// The backend's plan for `files` over the latest generation (of the same backend).
    private func planned(files: [String: String], backend kind: Backend, takeOver: Bool, scope: OwnershipScope)
        throws -> (previous: Generation?, backend: any KernelBackend, plan: Plan)
    {
        let previous = try store.latest()
        if let previous, previous.backend != kind {
            throw ApplyError(
                message:
                    "generation \(previous.number) was applied with the \(previous.backend.rawValue) backend; roll it back before switching to \(kind.rawValue)"
            )
        }
        if let previous, previous.scope != scope {
            func owning(_ scope: OwnershipScope) -> String {
                switch scope {
                case .layout: "owning the layout's chains and tables"
                case .alongsideDocker(let place): "alongside Docker, owning only \(place)"
                }
            }
            throw ApplyError(
                message:
                    "generation \(previous.number) was applied \(owning(previous.scope)); roll it back before applying \(owning(scope))"
            )
        }
        let backend = backend(for: kind, scope: scope)
        return (previous, backend, try backend.plan(wanted: files, previous: previous, takeOver: takeOver))
    }

    /// What others changed, since the latest generation was applied, in what it owns (in a
    /// sentence); nil when nothing, or when there is no generation. On nftables this is one
    /// question to the kernel when no transaction was committed since.
    /// Changes elements of the latest generation's nftables sets in one transaction, outside
    /// any generation: `watch`'s delta path, whose next full sync records them. Refused while a
    /// generation waits for confirmation. The kernel's seconds, and the ruleset generation the
    /// commit left (drift checks compare it).
    public func applyElements(_ batch: String) throws -> (seconds: Double, kernelGeneration: UInt32?) {
        if let pending = pending() {
            throw ApplyError(
                message: "generation \(pending.generation) is waiting for confirmation until \(pending.deadlineDate)")
        }
        let started = DispatchTime.now()
        try NftablesBackend.run(batch, logger: logger)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
        return (seconds, RulesetGeneration.current())
    }

    public func changes() throws -> String? {
        guard let latest = try store.latest() else { return nil }
        return try backend(for: latest.backend, scope: latest.scope).changes(since: latest)
    }

    /// Undoes the latest generation: the kernel gets back exactly the snapshot taken before it
    /// (Docker's rules and other tools' included; tables it created are removed). Refused when
    /// others changed what it applied since, unless `force`.
    public func rollback(force: Bool = false) throws -> RollbackOutcome {
        guard let latest = try store.latest() else { return .nothingToRollBack }
        if let changes = try backend(for: latest.backend, scope: latest.scope).changes(since: latest) {
            guard force else {
                throw ApplyError(
                    message:
                        "\(changes); rolling back would undo those changes too. Look at them, then rerun with --force to put back the snapshot anyway"
                )
            }
            logger.warning("rolling back although \(changes)")
        }
        try store.beginJournal(.init(operation: .rollback, generation: latest.number))
        try undo(latest)
        try store.endJournal()
        if case .waiting(let pending) = store.pending(), pending.generation == latest.number {
            try store.clearPending()
        }
        logger.info("rolled back generation \(latest.number)")
        return .rolledBack(from: latest.number, to: store.generationNumbers().last)
    }

    /// Keeps the generation waiting for confirmation: removes its record before its deadline.
    /// `generation`, when given, must be the one waiting.
    public func confirm(generation wanted: Int? = nil) throws -> ConfirmOutcome {
        guard let pending = pending() else { return .nothingPending }
        if pending.namespace != PendingConfirmation.currentNamespace {
            throw ApplyError(
                message:
                    "generation \(pending.generation) waits for confirmation in another network namespace (\(pending.namespace)); confirm it there"
            )
        }
        if let wanted, wanted != pending.generation {
            throw ApplyError(
                message: "generation \(pending.generation) is the one waiting for confirmation, not \(wanted)")
        }
        try store.clearPending()
        return .confirmed(generation: pending.generation)
    }

    /// Puts back the snapshot taken before `generation` and forgets it.
    func undo(_ generation: Generation) throws {
        try backend(for: generation.backend, scope: generation.scope).restore(before: generation)
        try store.discard(generation.number)
    }
}
