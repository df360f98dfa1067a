import Foundation
import Logging
import NftablesKit

/// What `apply` did.
public enum ApplyOutcome: Sendable, Equatable {
    case unchanged(generation: Int)
    /// `kernelSeconds`: how long the kernel transaction itself took.
    case applied(generation: Int, change: AppliedChange, kernelSeconds: Double)
}

/// What `rollback` did.
public enum RollbackOutcome: Sendable, Equatable {
    /// Generation `from` was undone; `to` is now current (nil: nothing of Portcullis' is left).
    case rolledBack(from: Int, to: Int?)
    case nothingToRollBack
}

/// Applies rendered rulesets to the kernel of the current network namespace, atomically and
/// within Portcullis' ownership rules, recording each change as a generation in the state
/// directory so that it can be rolled back.
public struct Applier {
    public let store: StateStore
    public let logger: Logger

    public init(store: StateStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    func backend(for name: String) -> KernelBackend {
        switch name {
        case "iptables": IptablesBackend(logger: logger)
        case "nftables-json": NftablesBackend(logger: logger, json: true)
        default: NftablesBackend(logger: logger, json: false)
        }
    }

    /// Applies `files` (rendered by `backend` for `layout`). The caller holds the state lock.
    public func apply(
        files: [String: String], backend name: String, layout: String, policy: String, takeOver: Bool
    ) throws -> ApplyOutcome {
        let previous = store.latest()
        if let previous, previous.backend != name {
            throw ApplyError(
                message:
                    "generation \(previous.number) was applied with the \(previous.backend) backend; roll it back before switching to \(name)"
            )
        }
        let backend = backend(for: name)
        let plan = try backend.plan(wanted: files, previous: previous, takeOver: takeOver)
        if plan.isEmpty, let previous {
            logger.info("no changes: the kernel already holds generation \(previous.number)")
            return .unchanged(generation: previous.number)
        }
        let started = DispatchTime.now()
        try plan.commit()
        let kernelSeconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
        let number = try store.save(
            backend: name, layout: layout, policy: policy, applied: files, before: plan.before,
            listingAfter: plan.listingAfter ?? backend.listing(of: files),
            kernelGeneration: backend is NftablesBackend ? RulesetGeneration.current() : nil)
        logger.info("applied generation \(number) (\(layout), \(name))")
        return .applied(generation: number, change: plan.change, kernelSeconds: kernelSeconds)
    }

    /// Undoes the latest generation: the one before it is applied again with the same
    /// ownership rules, or, when it was the first, Portcullis' rules are removed and any table it
    /// took over is restored. The caller holds the state lock.
    public func rollback() throws -> RollbackOutcome {
        guard let latest = store.latest() else { return .nothingToRollBack }
        let earlier = store.generationNumbers().dropLast().last.flatMap { store.load($0) }
        let backend = backend(for: latest.backend)
        if let earlier {
            let plan = try backend.plan(wanted: earlier.applied, previous: latest, takeOver: false)
            try plan.commit()
        } else if let nft = backend as? NftablesBackend {
            let tables = NftablesBackend.tables(in: latest.applied[nft.ext] ?? "", json: nft.json)
            let live = try nft.liveTables()
            if !nft.unchanged(since: latest, tables: tables.filter(live.contains)) {
                throw ApplyError(
                    message:
                        "tables \(tables.map(\.spec).joined(separator: ", ")) changed since generation \(latest.number); not rolling back over those changes"
                )
            }
            try nft.restore(snapshot: latest.before["nft.json"] ?? "", deleting: tables.filter(live.contains))
        } else {
            try backend.plan(wanted: [:], previous: latest, takeOver: false).commit()
        }
        store.discard(latest.number)
        logger.info("rolled back generation \(latest.number)")
        return .rolledBack(from: latest.number, to: earlier?.number)
    }
}
