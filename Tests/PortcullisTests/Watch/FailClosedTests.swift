import Foundation
import Testing

/// `unknown-containers drop` under `portcullis watch --alongside-docker`, beside a real dockerd
/// 20.10 in a namespace of the test's own: containers whose first action is an egress attempt
/// the policy denies, started again and again, never get through, nor does a connection to a
/// port the policy allow-lists from one source, tried from another while the container starts;
/// once the watcher has synced, what the policy allows works.
@Suite(.enabled(if: Kernel.enabled, Kernel.reason), .serialized)
struct FailClosedTests {
    static let policy = """
        host {
            unknown-containers drop
        }

        addresses office { 198.18.73.2 }

        group probes { label role=probe }

        container pub {
            publish 8090 -> 80/tcp from office
        }

        egress probes -> 198.18.73.2 port 80/tcp

        """

    /// Tries `198.18.73.1:8090` from 198.18.73.200 every 20 ms for `seconds`; prints how many
    /// connections were answered.
    static let prober = """
        import socket, sys, time
        end = time.time() + float(sys.argv[1])
        answered = 0
        while time.time() < end:
            s = socket.socket()
            s.settimeout(0.05)
            s.bind(("198.18.73.200", 0))
            try:
                s.connect(("198.18.73.1", 8090))
                answered += 1
            except OSError:
                pass
            finally:
                s.close()
            time.sleep(0.02)
        print(answered)
        """

    @Test(.timeLimit(.minutes(5)))
    func newContainersGetNothingThePolicyDeniesBeforeTheirRules() async throws {
        try #require(DockerDaemon.available, "needs dockerd 20.10, its client and a static busybox")
        let daemon = try DockerDaemon()
        defer { daemon.stop() }
        try daemon.docker([
            [
                "network", "create", "--subnet", "198.18.72.0/24", "-o", "com.docker.network.bridge.name=br-front",
                "front",
            ]
        ])
        // The outside world behind a veth: 198.18.73.2 (the server, allow-listed) and .200.
        let outside = try daemon.outsideWorld(subnet: "198.18.73")
        let servers = AlongsideDockerDaemonTests.Servers()
        try servers.start(["/usr/sbin/ip", "netns", "exec", outside.name], ports: ["80", "81"])
        let world = ["/usr/sbin/ip", "netns", "exec", outside.name]

        let scratch = try DockerDaemon.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let policyFile = scratch + "/host.policy"
        try Self.policy.write(toFile: policyFile, atomically: true, encoding: .utf8)
        let watch = try WatchProcess(
            daemon,
            [
                policyFile, "--alongside-docker", "--docker-host", "unix://" + daemon.socket, "--state-dir",
                scratch + "/state",
            ], log: scratch + "/watch.log")
        #expect(
            try await WatchCommandTests.eventually { watch.logged("sync 1: start: applied generation 1") },
            "\(watch.text)")
        #expect(!watch.logged("does not set 'unknown-containers drop'"), "no warning: the policy sets it")
        let unknownDrops = AlongsideDockerDaemonTests.rules(daemon, "DOCKER-USER").filter {
            $0.contains("unknown-containers drop")
        }
        // Two bridges (docker0 and br-front), two directions: a RETURN for the gateway and a drop.
        #expect(unknownDrops.count == 8, "\(unknownDrops)")

        var random = SeededGenerator(seed: 14)
        var denied = 0
        var published = 0
        let rounds = Int(ProcessInfo.processInfo.environment["PC_FAIL_CLOSED_ROUNDS"] ?? "") ?? 24
        // Time limits do not run `defer`: stop early rather than leave the daemon behind.
        let deadline = Date().addingTimeInterval(100)
        for round in 0..<rounds where Date() < deadline {
            if Int.random(in: 0..<4, using: &random) == 0 {
                // An allow-listed publish: tried from a source the list does not name, from
                // before the container starts until after its rules are in place.
                let probing = Process()
                probing.executableURL = URL(fileURLWithPath: world[0])
                probing.arguments = Array(world.dropFirst()) + ["/usr/bin/python3", "-c", Self.prober, "3"]
                let answers = Pipe()
                probing.standardOutput = answers
                try probing.run()
                try daemon.docker([
                    [
                        "run", "-d", "--name", "pub", "--network", "front", "-p", "8090:80", "tiny:1", "/bin/busybox",
                        "nc", "-ll", "-p", "80", "-e", "/bin/busybox", "echo", "ok",
                    ]
                ])
                probing.waitUntilExit()
                let count = String(decoding: answers.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                #expect(count.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "round \(round): \(count)")
                // Once its rules are in, the allow-listed source gets through.
                #expect(
                    try await WatchCommandTests.eventually(seconds: 10) {
                        AlongsideDockerDaemonTests.connects(world, "198.18.73.1", "8090", source: "198.18.73.2")
                    },
                    "round \(round): the allow-listed source: \(daemon.docker(["logs", "pub"]).stderr) \(AlongsideDockerDaemonTests.rules(daemon, "DOCKER-USER"))\n\(watch.text)"
                )
                try daemon.docker([["rm", "-f", "pub"]])
                published += 1
            } else {
                // The container's first action: egress the policy denies its group.
                let run = daemon.docker([
                    "run", "--rm", "--label", "role=probe", "--network", "front", "tiny:1", "/bin/busybox", "sh", "-c",
                    "/bin/busybox timeout 2 /bin/busybox nc 198.18.73.2 81 </dev/null; echo end",
                ])
                #expect(run.status == 0, "round \(round): \(run.stderr)")
                #expect(run.stdout == "end\n", "round \(round): a denied egress got through: \(run.stdout)")
                denied += 1
            }
        }
        #expect(rounds < 24 || (denied > 10 && published > 2), "\(denied) egress starts, \(published) publishes")

        // After its sync, a member of the group reaches what its egress allows.
        let allowed = daemon.docker([
            "run", "--rm", "--label", "role=probe", "--network", "front", "tiny:1", "/bin/busybox", "sh", "-c",
            "for i in 1 2 3 4 5; do /bin/busybox timeout 2 /bin/busybox nc 198.18.73.2 80 </dev/null && break; done; echo end",
        ])
        #expect(allowed.stdout == "ok\nend\n", "the allowed egress: \(allowed.stdout) \(allowed.stderr)")
        #expect(!watch.logged(" error "), "\(watch.text)")
    }
}
