import Foundation
import PortcullisDocker
import PortcullisWatch
import Synchronization
import Testing

/// The watcher's loop against a fake daemon and a recording target: a full read and a sync at
/// start, a change synced at once and changes during a sync carried by the next one, a lost
/// stream reconnected and read again from scratch, failed syncs retried, a reload that does
/// not check keeping the running policy, drift repaired, stop leaving everything as it is.
@Suite(.serialized)
struct WatcherTests {
    /// Records the inventories the syncs were given; a sync fails while `failures` is above 0
    /// and waits while `holding` is set. A reload fails with `policyError`; the next drift
    /// check finds `drifted`.
    final class Syncs: WatchTarget, @unchecked Sendable {
        private let lock = NSLock()
        private var given: [Inventory] = []
        private var repairs: [Bool] = []
        private var begun = 0
        var failures = 0
        let holding = Mutex(false)
        let policyError = Mutex<String?>(nil)
        let drifted = Mutex<String?>(nil)

        var inventories: [Inventory] { lock.withLock { given } }
        /// Which syncs were repairs.
        var repaired: [Bool] { lock.withLock { repairs } }
        /// Syncs begun, finished or not.
        var started: Int { lock.withLock { begun } }

        func sync(_ inventory: Inventory, repair: Bool) async throws -> SyncReport {
            lock.withLock { begun += 1 }
            while holding.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(10)) }
            return try lock.withLock {
                given.append(inventory)
                repairs.append(repair)
                if failures > 0 {
                    failures -= 1
                    throw WatchError("the kernel rejected the ruleset")
                }
                return SyncReport(changed: true, summary: "applied generation \(given.count)", driftRepaired: repair)
            }
        }

        func reload(boundTo inventory: Inventory) async throws {
            if let error = policyError.withLock({ $0 }) { throw WatchError(error) }
        }

        func drift() async throws -> String? { drifted.withLock { $0.take() } }

        var dropsUnknownContainers = false
    }

    static let quick = WatchConfiguration(
        initialBackoff: .milliseconds(50), maximumBackoff: .milliseconds(200), driftInterval: .milliseconds(100))

    /// Runs a watcher over `daemon` while `body` runs, then stops it.
    static func watching(
        _ daemon: FakeDaemon, _ syncs: Syncs, log: LogRecorder, _ body: (Watcher) async throws -> Void
    ) async throws {
        let watcher = Watcher(daemon: daemon, configuration: quick, logger: log.logger, target: syncs)
        let running = Task { await watcher.run() }
        do {
            try await body(watcher)
        } catch {
            watcher.stop()
            await running.value
            throw error
        }
        watcher.stop()
        await running.value
    }

    static func started(_ name: String, _ id: String, second: Int) -> Inventory.Container {
        Fake.container(name, id: id, started: "2024-01-01T00:00:\(10 + second)Z", on: [("bridge", 1, 10 + second)])
    }

    static func start(_ daemon: FakeDaemon, _ number: Int) {
        daemon.inspector.set(Self.started("c\(number)", "id\(number)", second: number), id: "id\(number)")
        daemon.send(EngineEvent(type: "container", action: "start", actorID: "id\(number)"))
    }

    @Test func aChangeSyncsAtOnceAndChangesDuringASyncAreOneMore() async throws {
        let daemon = FakeDaemon()
        let syncs = Syncs()
        let log = LogRecorder()
        try await Self.watching(daemon, syncs, log: log) { watcher in
            #expect(await eventually { syncs.inventories.count == 1 }, "the first sync, at start")
            // The first change syncs with no wait for more: the sync has begun before the next
            // event is sent, and is held there.
            syncs.holding.withLock { $0 = true }
            Self.start(daemon, 0)
            #expect(await eventually { syncs.started == 2 })
            for number in 1..<5 { Self.start(daemon, number) }
            try await Task.sleep(for: .milliseconds(300))
            #expect(syncs.started == 2, "no sync while one runs")
            syncs.holding.withLock { $0 = false }
            #expect(await eventually { syncs.inventories.count == 3 })
            try await Task.sleep(for: .milliseconds(300))
            #expect(syncs.inventories.count == 3, "the burst during the sync is one more sync")
            #expect(syncs.inventories[1].containers.map(\.name) == ["c0"])
            #expect(syncs.inventories[2].containers.map(\.name) == ["c0", "c1", "c2", "c3", "c4"])
            // Events that change nothing cause no sync.
            daemon.send(EngineEvent(type: "container", action: "create", actorID: "id9"))
            try await Task.sleep(for: .milliseconds(300))
            #expect(syncs.inventories.count == 3)
            let snapshot = watcher.snapshot
            #expect(snapshot.metrics.syncs == 3 && snapshot.metrics.managedContainers == 5)
        }
        let lines = log.lines.filter { $0.hasPrefix("info: sync") }
        #expect(lines.count == 3, "\(log.lines)")
        #expect(lines[1].hasPrefix("info: sync 2: c0 started: applied generation 2 in "), "\(lines)")
        #expect(
            lines[2].hasPrefix(
                "info: sync 3: c1 started, c2 started, c3 started, c4 started: applied generation 3 in "),
            "\(lines)")
        #expect(log.lines.last == "notice: stopping; the rules stay in place")
    }

    @Test func aLostStreamIsReconnectedAndReadAgainFromScratch() async throws {
        let daemon = FakeDaemon()
        let syncs = Syncs()
        let log = LogRecorder()
        try await Self.watching(daemon, syncs, log: log) { watcher in
            #expect(await eventually { syncs.inventories.count == 1 })
            // While the stream is gone a container starts: no event tells of it.
            daemon.refusals = 2
            daemon.endStream()
            daemon.inspector.set(Self.started("quiet", "q1", second: 1), id: "q1")
            #expect(await eventually { syncs.inventories.count == 2 })
            #expect(syncs.inventories.last?.containers.map(\.name) == ["quiet"])
            #expect(daemon.attempts == 4, "the first connection, two refused, the reconnection")
            #expect(watcher.snapshot.connections == 2 && watcher.snapshot.connected)
            // Events of the new connection are followed.
            daemon.inspector.set(nil as Inventory.Container?, id: "q1")
            daemon.send(EngineEvent(type: "container", action: "die", actorID: "q1"))
            #expect(await eventually { syncs.inventories.count == 3 })
            #expect(syncs.inventories.last?.containers == [])
        }
        #expect(
            log.lines.contains {
                $0.hasPrefix(
                    "warning: lost the fake daemon: the event stream ended; the rules stay in place, reconnecting in")
            })
        #expect(
            log.lines.contains {
                $0.hasPrefix(
                    "error: cannot reach the fake daemon: no Docker daemon at the fake socket; the rules stay in place, retrying in"
                )
            })
        #expect(
            log.lines.contains {
                $0.contains("reconnected to the fake daemon: 0 bridge network(s), 1 running container(s), read again")
            })
        #expect(log.lines.contains { $0.hasPrefix("info: sync 2: reconnected: applied generation 2") })
    }

    /// A daemon without live-restore starts its containers again before it answers, on
    /// addresses that may have been others': with `unknown-containers drop`, losing it syncs
    /// no container at once (then the reconnection syncs what runs). With live-restore, or
    /// without the setting (no container known would open them all), the rules stay.
    @Test(arguments: [(false, true, true), (true, true, false), (false, false, false)])
    func losingADaemonThatDoesNotLiveRestoreForgetsItsContainers(
        liveRestore: Bool, dropsUnknown: Bool, forgets: Bool
    ) async throws {
        let daemon = FakeDaemon()
        daemon.inspector.liveRestore = liveRestore
        daemon.inspector.set(Self.started("web", "w1", second: 1), id: "w1")
        let syncs = Syncs()
        syncs.dropsUnknownContainers = dropsUnknown
        let log = LogRecorder()
        try await Self.watching(daemon, syncs, log: log) { watcher in
            #expect(await eventually { syncs.inventories.count == 1 })
            daemon.refusals = 3
            daemon.endStream()
            #expect(await eventually { daemon.attempts == 5 && watcher.snapshot.connected })
            #expect(await eventually { syncs.inventories.last?.containers.map(\.name) == ["web"] })
            let synced = syncs.inventories.map { $0.containers.map(\.name) }
            #expect(synced == (forgets ? [["web"], [], ["web"]] : [["web"], ["web"]]), "\(synced)")
        }
        let lost = log.lines.first { $0.hasPrefix("warning: lost the fake daemon") } ?? ""
        #expect(
            lost.contains("until it is back no container is known") == forgets
                && lost.contains("the rules stay in place") == !forgets, "\(lost)")
        #expect(log.lines.contains { $0.hasPrefix("info: sync 2: lost the daemon: applied generation 2") } == forgets)
    }

    @Test func aFailedSyncIsRetriedAndCounted() async throws {
        let daemon = FakeDaemon()
        let syncs = Syncs()
        syncs.failures = 2
        let log = LogRecorder()
        try await Self.watching(daemon, syncs, log: log) { watcher in
            #expect(await eventually { syncs.inventories.count == 3 })
            let metrics = watcher.snapshot.metrics
            #expect(metrics.syncs == 3 && metrics.failures == 2 && metrics.lastSuccess != nil)
            #expect(watcher.snapshot.lastError == nil)
        }
        #expect(
            log.lines.contains {
                $0.hasPrefix(
                    "error: sync 1 failed: start: the kernel rejected the ruleset; the rules in place are kept, retrying in"
                )
            })
        #expect(log.lines.contains { $0.hasPrefix("info: sync 3: retry, start: applied generation 3") })
    }

    @Test func reloadSyncsNowAndAnInspectErrorReconnects() async throws {
        let daemon = FakeDaemon()
        let syncs = Syncs()
        let log = LogRecorder()
        try await Self.watching(daemon, syncs, log: log) { watcher in
            #expect(await eventually { syncs.inventories.count == 1 })
            watcher.reload()
            #expect(await eventually { syncs.inventories.count == 2 })
            daemon.inspector.failing = true
            daemon.send(EngineEvent(type: "container", action: "start", actorID: "x1"))
            #expect(await eventually { watcher.snapshot.connected == false })
            daemon.inspector.failing = false
            #expect(await eventually { watcher.snapshot.connections == 2 && syncs.inventories.count == 3 })
        }
        #expect(log.lines.contains { $0.hasPrefix("info: sync 2: policy reload: applied generation 2") })
        #expect(
            log.lines.contains {
                $0.contains("lost the fake daemon: cannot read what container start changed: the fake daemon is gone")
            })
    }

    @Test func aReloadThatDoesNotCheckKeepsTheRunningPolicy() async throws {
        let daemon = FakeDaemon()
        let syncs = Syncs()
        let log = LogRecorder()
        let diagnostics = "host.policy:3:7: error: unknown container 'wbe'"
        try await Self.watching(daemon, syncs, log: log) { watcher in
            #expect(await eventually { syncs.inventories.count == 1 })
            syncs.policyError.withLock { $0 = diagnostics }
            watcher.reload()
            #expect(await eventually { watcher.snapshot.metrics.reloadFailures == 1 })
            #expect(watcher.snapshot.lastReloadError == diagnostics)
            // No sync for it, and changes still sync (with the running policy).
            Self.start(daemon, 0)
            #expect(await eventually { syncs.inventories.count == 2 })
            try await Task.sleep(for: .milliseconds(200))
            #expect(syncs.inventories.count == 2)
            // Fixed: the next reload checks, syncs, and clears the error.
            syncs.policyError.withLock { $0 = nil }
            watcher.reload()
            #expect(await eventually { syncs.inventories.count == 3 })
            #expect(watcher.snapshot.lastReloadError == nil && watcher.snapshot.metrics.reloadFailures == 1)
        }
        let failed = log.lines.filter { $0.hasPrefix("error: the policy was not reloaded") }
        #expect(
            failed == ["error: the policy was not reloaded; the syncs go on with the running policy:\n\(diagnostics)"])
        #expect(log.lines.contains { $0.hasPrefix("info: sync 2: c0 started: applied generation 2") })
        #expect(log.lines.contains { $0.hasPrefix("info: sync 3: policy reload: applied generation 3") })
    }

    @Test func rulesChangedBySomeoneElseAreRepairedWithNoEvent() async throws {
        let daemon = FakeDaemon()
        let syncs = Syncs()
        let log = LogRecorder()
        try await Self.watching(daemon, syncs, log: log) { watcher in
            #expect(await eventually { syncs.inventories.count == 1 })
            // Checks that find nothing sync nothing.
            try await Task.sleep(for: .milliseconds(350))
            #expect(syncs.inventories.count == 1)
            syncs.drifted.withLock { $0 = "tables inet portcullis changed since generation 1 applied them" }
            #expect(await eventually { syncs.inventories.count == 2 })
            #expect(syncs.repaired == [false, true])
            #expect(watcher.snapshot.metrics.driftRepairs == 1)
            try await Task.sleep(for: .milliseconds(350))
            #expect(syncs.inventories.count == 2)
        }
        #expect(
            log.lines.contains(
                "warning: rules changed by someone else: tables inet portcullis changed since generation 1 applied them; repairing"
            ))
        #expect(
            log.lines.contains {
                $0.hasPrefix(
                    "info: sync 2: rules changed by someone else: applied generation 2 (repaired rules changed by someone else) in"
                )
            }, "\(log.lines)")
    }
}
