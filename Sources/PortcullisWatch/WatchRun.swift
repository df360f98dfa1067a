import Foundation
import Logging
import NftablesKit
import PortcullisCompiler
import PortcullisDocker
import PortcullisKernel
import PortcullisLayouts
import PortcullisSyntax
import Synchronization

/// The real daemon: each connection opens an Engine API session, subscribes to its events, then
/// reads the full inventory (so no event falls between the two).
public struct EngineDaemon: WatchedDaemon {
    public let engine: EngineClient

    public init(_ engine: EngineClient) { self.engine = engine }

    public var origin: String { "the Docker daemon at \(engine.host)" }

    public func connect() async throws -> DaemonConnection {
        let session = try await EngineSession(engine)
        do {
            let stream = try await session.events()
            let engine = engine
            let inventory = try await blocking { try engine.inventory() }
            let events = AsyncThrowingStream<EngineEvent, any Error> { continuation in
                let reader = Task {
                    do {
                        for try await event in stream { continuation.yield(event) }
                        continuation.finish()
                    } catch {
                        continuation.finish(throwing: error)
                    }
                }
                continuation.onTermination = { _ in reader.cancel() }
            }
            return DaemonConnection(
                events: events, inventory: inventory, inspector: session, origin: origin,
                close: { await session.shutdown() })
        } catch {
            await session.shutdown()
            throw error
        }
    }
}

/// Runs blocking work (HTTP waits, the state lock, iptables-restore) on a thread of its own,
/// not on one of the few threads Swift's tasks share.
func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// What `watch` is asked: the change each sync applies (policy, layout, backend,
/// `--alongside-docker`; its inventory is the watcher's), the daemon, and the metrics file.
public struct WatchRequest: Sendable {
    public var change: ChangeRequest
    public var dockerHost: String?
    public var metricsFile: String?
    public var configuration: WatchConfiguration

    public init(
        change: ChangeRequest, dockerHost: String? = nil, metricsFile: String? = nil,
        configuration: WatchConfiguration = WatchConfiguration()
    ) {
        self.change = change
        self.dockerHost = dockerHost
        self.metricsFile = metricsFile
        self.configuration = configuration
    }
}

extension Application {
    /// `portcullis watch`: checks the policy and the daemon's address, takes the state
    /// directory's watch lock (one watcher per state directory), then runs a `Watcher` whose
    /// syncs are `apply` runs with the watcher's inventory, until the watcher is stopped.
    /// `started` gets the watcher first, to connect signals to `reload()` and `stop()`. After
    /// every sync the status file (STATE/watch.json) and the metrics file are rewritten.
    public func runWatch(
        _ request: WatchRequest, state: StateAccess, logger: Logger, started: @Sendable (Watcher) -> Void = { _ in }
    ) async throws -> RunStatus {
        let engine: EngineClient
        do { engine = try EngineClient(host: request.dockerHost) } catch {
            throw CompileFailure.usage(error.description)
        }
        // The policy is read once and checked against the host as it is now, so that one that
        // cannot bind to it (or has errors of its own) stops the watcher before anything is
        // applied. The syncs use what was read here, until a reload that checks.
        let origin = "the Docker daemon at \(engine.host)"
        let loaded: LoadedPolicy
        let dropsUnknown: Bool
        do {
            let host = HostInventory(try engine.inventory(), origin: origin)
            loaded = try Compiler().load(request.change.policy).get()
            let (policy, _) = try Compiler().check(loaded, boundTo: host).get()
            dropsUnknown = policy.host.unknownContainersDrop
            if !dropsUnknown { warnOpenBetweenStartAndRules(request.change.policy, logger) }
        } catch let error as InventoryError {
            throw CompileFailure.usage(error.description)
        }
        guard Host.hasNetAdmin else {
            throw CompileFailure.usage("watch needs CAP_NET_ADMIN to apply rulesets; nothing was changed")
        }
        if let metrics = request.metricsFile {
            let folder = URL(fileURLWithPath: metrics).deletingLastPathComponent().path
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue
            else {
                throw CompileFailure.usage("--metrics-file \(metrics): no directory \(folder)")
            }
        }
        let lock = try WatchLock(directory: state.directory)
        defer { withExtendedLifetime(lock) {} }

        let status = Mutex(WatchStatus(policy: request.change.policy, dockerHost: engine.host))
        let target = ApplyTarget(
            change: request.change, running: (loaded, dropsUnknown), origin: origin, state: state, logger: logger)
        let watcher = Watcher(
            daemon: EngineDaemon(engine), configuration: request.configuration, logger: logger, target: target,
            changed: { snapshot in
                let current = status.withLock {
                    $0.snapshot = snapshot
                    return $0
                }
                Self.publish(current, state: state, metricsFile: request.metricsFile, logger: logger)
            })
        started(watcher)
        await watcher.run()
        let final = status.withLock {
            $0.snapshot = watcher.snapshot
            $0.stopped = Date()
            return $0
        }
        Self.publish(final, state: state, metricsFile: request.metricsFile, logger: logger)
        return .clean
    }

    /// Without `unknown-containers drop`, a container that starts gets what Docker gives it
    /// (open egress, open publishes) until the sync that follows its start event writes its
    /// rules: said once at start, in the log and on stderr.
    func warnOpenBetweenStartAndRules(_ policy: String, _ logger: Logger) {
        let text =
            "\(policy) does not set 'unknown-containers drop': a container that starts is open (Docker's egress, publishes and flows) between its start and the sync that writes its rules"
        let hint = "add 'unknown-containers drop' to the policy's host block to drop its traffic until then"
        logger.warning("\(text); \(hint)")
        console.note("warning: \(text)\nhint: \(hint)")
    }

    /// Writes the status and metrics files; a failure is logged, never fatal.
    static func publish(_ status: WatchStatus, state: StateAccess, metricsFile: String?, logger: Logger) {
        do { try status.write(to: state.directory) } catch { logger.error("status file: \(error)") }
        guard let metricsFile else { return }
        do { try status.snapshot.metrics.write(to: metricsFile) } catch { logger.error("metrics file: \(error)") }
    }

    /// `portcullis status`: the status file of the state directory's watcher and whether it
    /// still runs (stdout the file, stderr one line). Returns whether a watcher runs.
    public func runStatus(state: StateAccess) throws -> Bool {
        let found: WatcherState
        do { found = try WatcherState.read(directory: state.directory) } catch {
            throw CompileFailure.usage("\(error)")
        }
        if let text = found.text { console.output(text) }
        console.note(found.running ? "a watcher is running" : "no watcher is running: \(found.reason ?? "")")
        return found.running
    }
}

/// The watcher's syncs as `apply` runs of the running policy: read at start and again at each
/// reload that checks, never at an event, so that an edit with errors cannot stop new
/// containers from getting their rules.
final class ApplyTarget: WatchTarget {
    let change: ChangeRequest
    /// The running policy, and whether it sets `unknown-containers drop`.
    let running: Mutex<(policy: LoadedPolicy, dropsUnknown: Bool)>
    /// The delta path's table (native layout), from the last full sync; nil otherwise.
    let elements = Mutex<ElementSync?>(nil)
    /// A drift check found a change over element changes no generation records yet: the repair
    /// that follows is a drift repair.
    let driftSeen = Mutex(false)
    let origin: String
    let state: StateAccess
    let logger: Logger
    /// The kernel side's own lines stay at warning unless -v: the sync's line says what it did.
    let quiet: Logger

    init(
        change: ChangeRequest, running: (policy: LoadedPolicy, dropsUnknown: Bool), origin: String,
        state: StateAccess, logger: Logger
    ) {
        self.change = change
        self.running = Mutex(running)
        self.origin = origin
        self.state = state
        self.logger = logger
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .warning)
        self.quiet = quiet
    }

    /// A sync: the delta path when it can say the change (`ElementSync`, native layout),
    /// else `apply` of the running policy bound to the inventory, under the state lock. What
    /// apply printed is the report's summary, its notes go to the log; a new generation whose
    /// files equal the previous one's put back rules someone else had changed (drift). A repair
    /// is an apply with --take-over: apply refuses to replace rules others changed without it,
    /// and so are applies over element changes no generation records yet (`unsettled`).
    func sync(_ inventory: Inventory, repair: Bool) async throws -> SyncReport {
        if !repair, let report = try await elementSync(inventory) { return report }
        var request = change
        request.inventory = .given(inventory, origin: origin)
        request.loaded = running.withLock { $0.policy }
        let store = StateStore(directory: state.directory)
        let unsettled = store.hasUnsettledElements
        request.takeOver = change.takeOver || repair || unsettled
        let seen = repair && driftSeen.withLock { $0 }
        if repair { driftSeen.withLock { $0 = false } }
        let (state, logger, quiet) = (self.state, self.logger, self.quiet)
        let report = try await blocking { [request] in
            let console = LogConsole(logger: logger)
            let before = store.latestApplied()
            let status: RunStatus
            do {
                status = try Application(console: console).runApply(
                    request, state: state, confirmation: nil, logger: quiet)
            } catch let failure as CompileFailure {
                throw WatchError(failure.report)
            }
            guard status == .clean else {
                throw WatchError(console.written.isEmpty ? "apply failed" : console.written)
            }
            let after = store.latestApplied()
            let changed = after?.number != before?.number
            let drift =
                changed && before != nil && before?.files == after?.files && !unsettled
                || repair && seen
            if unsettled { try? store.markUnsettledElements(false) }
            return SyncReport(
                changed: changed, summary: console.written.trimmingCharacters(in: .whitespacesAndNewlines),
                driftRepaired: drift)
        }
        // The table the delta path starts from: what this sync applied, when it is native.
        let applied = store.latestApplied("nft")
        elements.withLock {
            $0 =
                applied.flatMap { applied in
                    applied.layout == NativeLayout.name && applied.backend == .nftables
                        ? ElementSync(inventory: inventory, table: ElementTable(applied.text)) : nil
                }
        }
        return report
    }

    /// The delta path: element commands in one transaction, recorded by a later full sync
    /// (`SyncReport.unsettled`); nil when only a full sync can say the change.
    func elementSync(_ inventory: Inventory) async throws -> SyncReport? {
        // Taken out while it changes (the watcher's syncs never overlap): a table of a large
        // host is changed in place, not copied.
        guard var base = elements.withLock({ $0.take() }) else { return nil }
        let loaded = running.withLock { $0.policy }
        let slice = ElementSync.slices(
            of: loaded, path: change.policy, layout: change.layout, backend: change.backend, origin: origin)
        let found: ElementSync.Delta
        switch base.delta(to: inventory, flowEnds: ElementSync.flowEnds(loaded), slice: slice) {
        case .success(let delta): found = delta
        case .failure(let why):
            logger.debug("a full sync: \(why)")
            return nil
        }
        let count = found.count
        guard count.added + count.removed > 0 else {
            base.take(found, to: inventory)
            let unsettled = base.unsettled
            elements.withLock { $0 = base }
            return SyncReport(changed: false, summary: "no changes: no element changed", unsettled: unsettled)
        }
        let batch = base.table.batch(removing: found.removed, adding: found.added)
        let (state, logger, quiet, wasUnsettled) = (self.state, self.logger, self.quiet, base.unsettled)
        // On an error the kernel's table is not known to be the one kept: the retry is a full sync.
        let committed = try await blocking {
            let store = StateStore(directory: state.directory)
            if !wasUnsettled { try store.markUnsettledElements(true) }
            do {
                return try Application(console: LogConsole(logger: logger)).runElementBatch(
                    batch, state: state, logger: quiet)
            } catch let failure as CompileFailure {
                throw WatchError(failure.report)
            }
        }
        base.take(found, to: inventory)
        base.unsettled = true
        base.kernelGeneration = committed.kernelGeneration
        elements.withLock { $0 = base }
        let seconds = committed.seconds
        return SyncReport(
            changed: true,
            summary:
                "only set elements changed (native, nftables; the next full sync records them), \(count.added) added and \(count.removed) removed in one transaction, "
                + String(format: "%.1f ms in the kernel", seconds * 1000),
            kernelSeconds: seconds, unsettled: true)
    }

    /// Reads the policy file (and its includes) again and checks it bound to the inventory;
    /// only one that checks becomes the running policy. Its diagnostics name the file.
    func reload(boundTo inventory: Inventory) async throws {
        let (path, host) = (change.policy, HostInventory(inventory, origin: origin))
        let checked = try await blocking {
            do {
                let loaded = try Compiler().load(path).get()
                let (policy, _) = try Compiler().check(loaded, boundTo: host).get()
                return (policy: loaded, dropsUnknown: policy.host.unknownContainersDrop)
            } catch let failure as CompileFailure {
                throw WatchError(failure.report)
            }
        }
        running.withLock { $0 = checked }
        forgetElements()
    }

    var dropsUnknownContainers: Bool { running.withLock { $0.dropsUnknown } }

    /// A reload changes what a container's elements are: the next sync is a full one.
    func forgetElements() { elements.withLock { $0 = nil } }

    func drift() async throws -> String? {
        // Between element changes and the full sync that records them, the last generation is
        // not what the kernel holds: the ruleset's generation counter tells.
        if let unsettled = elements.withLock({ $0?.unsettled == true ? $0 : nil }) {
            guard RulesetGeneration.current() != unsettled.kernelGeneration else { return nil }
            driftSeen.withLock { $0 = true }
            return "the ruleset changed since the watcher's last element changes (its generation counter moved)"
        }
        let (state, logger, quiet) = (self.state, self.logger, self.quiet)
        return try await blocking {
            do {
                return try Application(console: LogConsole(logger: logger)).ownedRulesChanged(
                    state: state, logger: quiet)
            } catch let failure as CompileFailure {
                throw WatchError(failure.report)
            }
        }
    }
}

/// The apply run's console for a sync: its output is kept for the report, its notes logged.
final class LogConsole: Console, @unchecked Sendable {
    let logger: Logger
    private let lock = NSLock()
    private var text = ""

    init(logger: Logger) { self.logger = logger }

    func output(_ text: String) { lock.withLock { self.text += text } }
    func note(_ line: String) { logger.notice("\(line)") }

    var written: String { lock.withLock { text } }
}

/// STATE/watch.lock, held while a watcher runs: a second watcher on the same state directory
/// would fight the first.
final class WatchLock: Sendable {
    let descriptor: Int32

    init(directory: String) throws {
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw CompileFailure.usage("cannot make the state directory \(directory): \(error.localizedDescription)")
        }
        let path = directory + "/watch.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CompileFailure.usage("cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw CompileFailure.usage(
                "another 'portcullis watch' runs with the state directory \(directory) ('portcullis status --state-dir \(directory)')"
            )
        }
        descriptor = fd
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
