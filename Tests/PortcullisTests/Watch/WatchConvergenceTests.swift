import Foundation
import Testing

/// `portcullis watch --alongside-docker` against a real dockerd 20.10 in a namespace of the
/// test's own: seeded random runs, stops, starts, restarts, removals, connects and disconnects
/// (PORTCULLIS_WATCH_SEED replays a run), and after each the owned chain equals what
/// `portcullis compile --inventory docker` gives at that moment. Then the watcher is killed
/// with SIGKILL and started again, the daemon is killed and started again, and a rule is
/// deleted by hand: each converges.
@Suite(.enabled(if: Kernel.enabled, Kernel.reason), .serialized)
struct WatchConvergenceTests {
    static let steps = 40

    /// Rules for every running container (the RETURN of a known address) and for a labelled
    /// group: any start, stop or move changes DOCKER-USER.
    static let policy = """
        host {
            unknown-containers drop
        }

        group webs { label role=web }

        egress webs -> 198.18.83.0/24 port 443/tcp

        """

    @Test(.timeLimit(.minutes(5)))
    func theRulesConvergeThroughChangesCrashesAndHandEdits() async throws {
        try #require(DockerDaemon.available, "needs dockerd 20.10, its client and a static busybox")
        let daemon = try DockerDaemon()
        defer { daemon.stop() }
        try daemon.docker([
            [
                "network", "create", "--subnet", "198.18.80.0/24", "-o", "com.docker.network.bridge.name=br-front",
                "front",
            ],
            ["network", "create", "--subnet", "198.18.81.0/24", "back"],
            ["run", "-d", "--name", "seed", "--network", "front", "--label", "role=web", "-p", "18100:80", "tiny:1"],
        ])
        let policy = daemon.directory + "/host.policy"
        try Self.policy.write(toFile: policy, atomically: true, encoding: .utf8)
        let host = ["--docker-host", "unix://" + daemon.socket]
        let arguments = [
            policy, "--alongside-docker", "--state-dir", daemon.directory + "/state", "--drift-check", "1",
        ]
        var watch = try WatchProcess(daemon, arguments + host, log: daemon.directory + "/watch-1.log")
        let seed = DockerWatchTests.seed

        /// Whether DOCKER-USER comes to equal what compile gives for the daemon now.
        func converges(_ what: String) async throws -> Bool {
            let compiled = run(
                [
                    CommandLineTests.binary, "compile", policy, "--alongside-docker", "--family", "ipv4", "--inventory",
                    "docker",
                ]
                    + host)
            try #require(compiled.status == 0, "\(what): \(compiled.stderr)")
            let wanted = compiled.stdout.split(separator: "\n").filter { $0.hasPrefix("-A ") }.map(String.init)
            let converged = try await WatchCommandTests.eventually(seconds: 30) {
                AlongsideDockerDaemonTests.rules(daemon, "DOCKER-USER") == wanted
            }
            #expect(
                converged,
                "seed \(seed), \(what):\n\(AlongsideDockerDaemonTests.rules(daemon, "DOCKER-USER").joined(separator: "\n"))\nwanted:\n\(wanted.joined(separator: "\n"))\n\(watch.text)"
            )
            return converged
        }
        #expect(try await converges("at start"))

        var steps = DockerSteps(
            seed: seed, networks: ["bridge", "front", "back"], extraNetwork: ["--subnet", "198.18.82.0/24", "side"],
            runOptions: ["--label", "role=web"], firstPort: 18_100)
        var done: Set<String> = []
        for step in 0..<Self.steps {
            guard let command = steps.next(listing: daemon.docker(DockerSteps.listing).stdout) else { continue }
            let result = daemon.docker(command)
            if result.status == 0 { done.insert(command[0] == "network" ? "network " + command[1] : command[0]) }
            guard try await converges("step \(step): docker \(command.joined(separator: " "))") else { return }
        }
        #expect(done.isSuperset(of: ["run", "stop", "start", "rm", "restart", "network connect"]), "\(done)")

        // Killed mid-flight: a container starts while no watcher runs; the next one reads
        // everything and converges.
        watch.kill9()
        try daemon.docker([["run", "-d", "--name", "unwatched", "--label", "role=web", "tiny:1"]])
        watch = try WatchProcess(daemon, arguments + host, log: daemon.directory + "/watch-2.log")
        guard try await converges("after kill -9 of the watcher and a start") else { return }

        // The daemon is killed (the event stream breaks) and comes back with its containers
        // stopped: the watcher reconnects, reads everything again and converges.
        daemon.crash()
        #expect(
            try await WatchCommandTests.eventually {
                watch.logged("lost the Docker daemon at unix://\(daemon.socket)")
            },
            "\(watch.text)")
        try daemon.restart()
        try daemon.docker([["run", "-d", "--name", "after-crash", "--network", "back", "tiny:1"]])
        guard try await converges("after the daemon was killed and started again") else { return }
        #expect(watch.logged("reconnected to the Docker daemon at unix://\(daemon.socket)"), "\(watch.text)")

        // A rule deleted by hand, with no event: the drift check puts it back.
        let deleted = daemon.namespace.exec(["iptables", "-D", "DOCKER-USER", "1"])
        try #require(deleted.status == 0, "\(deleted.stderr)")
        guard try await converges("after a rule was deleted by hand") else { return }
        // The sync's line is written after its kernel commit, which `converges` may see first.
        #expect(
            try await WatchCommandTests.eventually { watch.logged("(repaired rules changed by someone else)") },
            "\(watch.text)")
        #expect(!watch.logged(" error "), "\(watch.text)")
    }
}
