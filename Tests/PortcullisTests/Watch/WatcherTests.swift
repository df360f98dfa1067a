import Foundation
import PortcullisDocker
import PortcullisWatch
import Testing

/// The watcher's loop against a fake daemon and a recording sync: a full read and a sync at
/// start, bursts coalesced into one sync, a lost stream reconnected and read again from
/// scratch, failed syncs retried, stop leaving everything as it is.
@Suite(.serialized)
struct WatcherTests {
    /// The inventories the sync was given; it fails while `failures` is above 0.
    final class Syncs: @unchecked Sendable {
        private let lock = NSLock()
        private var given: [Inventory] = []
        var failures = 0

        var inventories: [Inventory] { lock.withLock { given } }

        func sync(_ inventory: Inventory) throws -> SyncReport {
            try lock.withLock {
                given.append(inventory)
                if failures > 0 {
                    failures -= 1
                    throw WatchError("the kernel rejected the ruleset")
                }
                return SyncReport(changed: true, summary: "applied generation \(given.count)")
            }
        }
    }

    static let quick = WatchConfiguration(
        coalesceWindow: .milliseconds(80), coalesceLimit: .seconds(2), initialBackoff: .milliseconds(50),
        maximumBackoff: .milliseconds(200))

    /// Runs a watcher over `daemon` while `body` runs, then stops it.
    static func watching(
        _ daemon: FakeDaemon, _ syncs: Syncs, log: LogRecorder, _ body: (Watcher) async throws -> Void
    ) async throws {
        let watcher = Watcher(daemon: daemon, configuration: quick, logger: log.logger) { try syncs.sync($0) }
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

    @Test func aBurstOfEventsIsOneSync() async throws {
        let daemon = FakeDaemon()
        let syncs = Syncs()
        let log = LogRecorder()
        try await Self.watching(daemon, syncs, log: log) { watcher in
            #expect(await eventually { syncs.inventories.count == 1 }, "the first sync, at start")
            for number in 0..<5 {
                daemon.inspector.set(Self.started("c\(number)", "id\(number)", second: number), id: "id\(number)")
                daemon.send(EngineEvent(type: "container", action: "start", actorID: "id\(number)"))
            }
            #expect(await eventually { syncs.inventories.count == 2 })
            try await Task.sleep(for: .milliseconds(400))
            #expect(syncs.inventories.count == 2, "one sync for the burst")
            #expect(syncs.inventories.last?.containers.map(\.name) == ["c0", "c1", "c2", "c3", "c4"])
            // Events that change nothing cause no sync.
            daemon.send(EngineEvent(type: "container", action: "create", actorID: "id9"))
            try await Task.sleep(for: .milliseconds(300))
            #expect(syncs.inventories.count == 2)
            let snapshot = watcher.snapshot
            #expect(snapshot.metrics.syncs == 2 && snapshot.metrics.managedContainers == 5)
        }
        let lines = log.lines.filter { $0.hasPrefix("info: sync") }
        #expect(lines.count == 2, "\(log.lines)")
        #expect(
            lines.last?.hasPrefix(
                "info: sync 2: c0 started, c1 started, c2 started, c3 started, c4 started: applied generation 2 in ")
                == true, "\(lines)")
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
}
