import Foundation
import PortcullisDocker
import PortcullisWatch
import Testing

/// The watcher against a real dockerd 20.10 in a namespace of the test's own: seeded random
/// runs, stops, starts, restarts, removals, connects and disconnects; after each, once the
/// events are in, the tracked inventory (and the one the last sync was given) equals a fresh
/// full read. Then the daemon is killed and started again: the watcher says so, reconnects,
/// reads everything again and follows the new daemon's events.
@Suite(.enabled(if: Kernel.enabled, Kernel.reason), .serialized)
struct DockerWatchTests {
    /// PORTCULLIS_WATCH_SEED replays a run.
    static let seed = ProcessInfo.processInfo.environment["PORTCULLIS_WATCH_SEED"].flatMap { UInt64($0) } ?? 1_412
    static let steps = 30

    /// Records the last inventory synced; the policy always checks, nothing drifts.
    final class Syncs: WatchTarget, @unchecked Sendable {
        private let lock = NSLock()
        private var last: Inventory?
        var latest: Inventory? { lock.withLock { last } }
        func sync(_ inventory: Inventory, repair: Bool) -> SyncReport {
            lock.withLock { last = inventory }
            return SyncReport(changed: true, summary: "recorded")
        }
        func reload(boundTo inventory: Inventory) {}
        func drift() -> String? { nil }
        let dropsUnknownContainers = false
    }

    /// Blocking work (docker commands, full reads) on a thread of its own.
    static func offThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
        }
    }

    /// Waits (up to `seconds`) until the tracked and synced inventories equal a full read.
    static func settle(_ watcher: Watcher, _ syncs: Syncs, _ engine: EngineClient, seconds: Double = 20)
        async throws -> (settled: Bool, fresh: Inventory?, tracked: Inventory?)
    {
        let deadline = Date().addingTimeInterval(seconds)
        var fresh: Inventory?
        repeat {
            fresh = try? await offThread { try engine.inventory() }
            if let fresh, watcher.snapshot.inventory == fresh, syncs.latest == fresh { return (true, fresh, fresh) }
            try await Task.sleep(for: .milliseconds(100))
        } while Date() < deadline
        return (false, fresh, watcher.snapshot.inventory)
    }

    @Test(.timeLimit(.minutes(10)))
    func theTrackerFollowsRandomChangesAndADaemonRestart() async throws {
        try #require(DockerDaemon.available, "needs dockerd 20.10, its client and a static busybox")
        let daemon = try DockerDaemon()
        defer { daemon.stop() }
        try daemon.docker([
            ["network", "create", "--subnet", "198.18.40.0/24", "front"],
            [
                "network", "create", "--subnet", "198.18.41.0/24", "-o", "com.docker.network.bridge.name=br-back",
                "back",
            ],
            ["run", "-d", "--name", "seed", "--network", "front", "-p", "18000:80", "tiny:1"],
        ])
        let engine = try EngineClient(host: "unix://" + daemon.socket)
        let (socket, directory) = (daemon.socket, daemon.directory)
        // DockerDaemon.docker, for the threads the commands run on.
        let docker: @Sendable ([String]) -> CommandResult = { arguments in
            run(["DOCKER_CONFIG=\(directory)/cli", "/usr/bin/docker", "-H", "unix://" + socket] + arguments)
        }
        let syncs = Syncs()
        let log = LogRecorder()
        let configuration = WatchConfiguration(
            initialBackoff: .milliseconds(100), maximumBackoff: .seconds(1), driftInterval: nil)
        let watcher = Watcher(
            daemon: EngineDaemon(engine), configuration: configuration, logger: log.logger, target: syncs)
        let running = Task { await watcher.run() }
        defer { watcher.stop() }

        var settled = try await Self.settle(watcher, syncs, engine)
        #expect(settled.settled, "at start: tracked \(String(describing: settled.tracked))")

        var steps = DockerSteps(
            seed: Self.seed, networks: ["bridge", "front", "back"],
            extraNetwork: ["--subnet", "198.18.42.0/24", "side"], firstPort: 18_000)
        var done: [String] = []
        for step in 0..<Self.steps {
            let listing = try await Self.offThread { docker(DockerSteps.listing) }
            guard let issued = steps.next(listing: listing.stdout) else { continue }
            // A connect to a network it is on, or a disconnect from one it is not on, is refused:
            // a step like any other (no event, nothing changes).
            let result = try await Self.offThread { docker(issued) }
            if result.status == 0 { done.append(issued[0] == "network" ? "network " + issued[1] : issued[0]) }
            settled = try await Self.settle(watcher, syncs, engine)
            #expect(
                settled.settled,
                "seed \(Self.seed), step \(step): docker \(issued.joined(separator: " ")) (exit \(result.status) \(result.stderr))\nfresh: \(String(describing: settled.fresh))\ntracked: \(String(describing: settled.tracked))"
            )
            if !settled.settled { break }
        }

        // The seed gives every kind of change, most steps one that succeeds.
        #expect(done.count >= Self.steps * 2 / 3, "\(done)")
        #expect(
            Set(done).isSuperset(of: ["run", "stop", "start", "rm", "restart", "network connect", "network disconnect"]
            ),
            "\(done)")

        // The daemon dies: the watcher says so and keeps retrying; the daemon comes back with
        // its containers stopped (no live restore): the watcher reads everything again.
        #expect(watcher.snapshot.connections == 1)
        daemon.crash()
        #expect(try await Self.eventually { !watcher.snapshot.connected }, "\(log.lines)")
        try daemon.restart()
        try daemon.docker([["run", "-d", "--name", "after", "--network", "back", "-p", "18999:80", "tiny:1"]])
        settled = try await Self.settle(watcher, syncs, engine, seconds: 30)
        #expect(
            settled.settled,
            "after the restart\nfresh: \(String(describing: settled.fresh))\ntracked: \(String(describing: settled.tracked))"
        )
        #expect(watcher.snapshot.connections >= 2)
        #expect(
            log.lines.contains {
                $0.hasPrefix("warning: lost the Docker daemon at unix://\(daemon.socket): the event stream")
            })
        #expect(log.lines.contains { $0.contains("reconnected to the Docker daemon at unix://\(daemon.socket)") })
        // Events of the new daemon are followed.
        try daemon.docker([["stop", "-t", "0", "after"]])
        settled = try await Self.settle(watcher, syncs, engine)
        #expect(settled.settled && settled.fresh?.containers.contains { $0.name == "after" } == false)

        watcher.stop()
        await running.value
        #expect(log.lines.last == "notice: stopping; the rules stay in place")
    }

    static func eventually(seconds: Double = 20, _ condition: () -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return condition()
    }
}
