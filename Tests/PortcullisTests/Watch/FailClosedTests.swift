import Foundation
import Testing

/// `unknown-containers drop` under `portcullis watch --alongside-docker`, beside a real dockerd
/// 20.10 in a namespace of the test's own: containers whose first action is an egress attempt
/// the policy denies, started again and again, never get through, nor does a connection to a
/// port the policy allow-lists from one source, tried from another while the container starts;
/// once the watcher has synced, what the policy allows works.
@Suite(.enabled(if: Kernel.enabled, Kernel.reason), .serialized)
struct FailClosedTests {
    /// The policy for an outside world on WORLD.0/24, whose WORLD.2 is the office.
    static func policy(world: String) -> String {
        """
        host {
            unknown-containers drop
        }

        addresses office { \(world).2 }

        group probes { label role=probe }

        container pub {
            publish 8090 -> 80/tcp from office
        }

        egress probes -> \(world).2 port 80/tcp

        """
    }

    /// Tries `WORLD.1:8090` from WORLD.200 every 20 ms for `seconds` (WORLD the second
    /// argument); prints how many connections were answered.
    static let prober = """
        import socket, sys, time
        end = time.time() + float(sys.argv[1])
        world = sys.argv[2]
        answered = 0
        while time.time() < end:
            s = socket.socket()
            s.settimeout(0.05)
            s.bind((world + ".200", 0))
            try:
                s.connect((world + ".1", 8090))
                answered += 1
            except OSError:
                pass
            finally:
                s.close()
            time.sleep(0.02)
        print(answered)
        """

    /// What a test runs in: a dockerd of its own with the bridge network `front` (FRONT.0/24,
    /// bridge br-front), the outside world behind a veth (WORLD.2 serves ports 80 and 81 and is
    /// the office, WORLD.200 is not), and the arguments of a watcher alongside Docker with the
    /// policy for that world. `stop()` removes it all.
    final class Scene {
        let daemon: DockerDaemon
        let world: String
        /// The command prefix that runs in the outside world.
        let inWorld: [String]
        let scratch: String
        let arguments: [String]
        let outside: TestNamespace
        let servers = AlongsideDockerDaemonTests.Servers()

        init(front: String, world: String) throws {
            daemon = try DockerDaemon()
            self.world = world
            do {
                try daemon.docker([
                    [
                        "network", "create", "--subnet", "\(front).0/24", "-o",
                        "com.docker.network.bridge.name=br-front", "front",
                    ]
                ])
                outside = try daemon.outsideWorld(subnet: world)
                inWorld = ["/usr/sbin/ip", "netns", "exec", outside.name]
                try servers.start(inWorld, ports: ["80", "81"])
                scratch = try DockerDaemon.temporaryDirectory()
                try FailClosedTests.policy(world: world).write(
                    toFile: scratch + "/host.policy", atomically: true, encoding: .utf8)
            } catch {
                daemon.stop()
                throw error
            }
            arguments = [
                scratch + "/host.policy", "--alongside-docker", "--docker-host", "unix://" + daemon.socket,
                "--state-dir", scratch + "/state",
            ]
        }

        func stop() {
            daemon.stop()
            try? FileManager.default.removeItem(atPath: scratch)
        }

        func watcher(log name: String) throws -> WatchProcess {
            try WatchProcess(daemon, arguments, log: scratch + "/\(name).log")
        }

        /// A probe container whose first action is an egress the policy denies its group: it
        /// prints only `end` when the attempt fails.
        func deniedEgress() -> CommandResult {
            daemon.docker([
                "run", "--rm", "--label", "role=probe", "--network", "front", "tiny:1", "/bin/busybox", "sh", "-c",
                "/bin/busybox timeout 2 /bin/busybox nc \(world).2 81 </dev/null; echo end",
            ])
        }

        /// A probe container tries what its group's egress allows, up to five times: `ok` and
        /// `end` when it got through.
        func allowedEgress() -> CommandResult {
            daemon.docker([
                "run", "--rm", "--label", "role=probe", "--network", "front", "tiny:1", "/bin/busybox", "sh", "-c",
                "for i in 1 2 3 4 5; do /bin/busybox timeout 2 /bin/busybox nc \(world).2 80 </dev/null && break; done; echo end",
            ])
        }

        /// Starts `pub` (its port allow-listed from the office) while WORLD.200 tries it, from
        /// before its start until after its rules are in place: how many connections were
        /// answered.
        func publishProbed() throws -> String {
            let probing = Process()
            probing.executableURL = URL(fileURLWithPath: inWorld[0])
            probing.arguments =
                Array(inWorld.dropFirst()) + ["/usr/bin/python3", "-c", FailClosedTests.prober, "3", world]
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
            return String(decoding: answers.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }

        /// Whether the office reaches pub's published port.
        func officeReachesPub() -> Bool {
            AlongsideDockerDaemonTests.connects(inWorld, "\(world).1", "8090", source: "\(world).2")
        }
    }

    @Test(.timeLimit(.minutes(5)))
    func newContainersGetNothingThePolicyDeniesBeforeTheirRules() async throws {
        try #require(DockerDaemon.available, "needs dockerd 20.10, its client and a static busybox")
        let scene = try Scene(front: "198.18.72", world: "198.18.73")
        defer { scene.stop() }
        let daemon = scene.daemon
        let watch = try scene.watcher(log: "watch")
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
                let answered = try scene.publishProbed()
                #expect(answered == "0", "round \(round): \(answered)")
                // Once its rules are in, the allow-listed source gets through.
                #expect(
                    try await WatchCommandTests.eventually(seconds: 10) { scene.officeReachesPub() },
                    "round \(round): the allow-listed source: \(daemon.docker(["logs", "pub"]).stderr) \(AlongsideDockerDaemonTests.rules(daemon, "DOCKER-USER"))\n\(watch.text)"
                )
                try daemon.docker([["rm", "-f", "pub"]])
                published += 1
            } else {
                // The container's first action: egress the policy denies its group.
                let run = scene.deniedEgress()
                #expect(run.status == 0, "round \(round): \(run.stderr)")
                #expect(run.stdout == "end\n", "round \(round): a denied egress got through: \(run.stdout)")
                denied += 1
            }
        }
        #expect(rounds < 24 || (denied > 10 && published > 2), "\(denied) egress starts, \(published) publishes")

        // After its sync, a member of the group reaches what its egress allows.
        let allowed = scene.allowedEgress()
        #expect(allowed.stdout == "ok\nend\n", "the allowed egress: \(allowed.stdout) \(allowed.stderr)")
        #expect(!watch.logged(" error "), "\(watch.text)")
    }

    /// The watcher killed with SIGKILL, then the daemon killed and started again: what the rules
    /// left in the kernel keep closed stays closed, to probe containers and an allow-listed
    /// publish started while no watcher runs, and to a `--restart always` probe container that
    /// tries a denied egress again and again through the daemon's restart; each time the
    /// watcher converges and what the policy allows works.
    @Test(.timeLimit(.minutes(5)))
    func deniedTrafficStaysDeniedWhileTheWatcherIsDeadAndTheDaemonRestarts() async throws {
        try #require(DockerDaemon.available, "needs dockerd 20.10, its client and a static busybox")
        let scene = try Scene(front: "198.18.74", world: "198.18.75")
        defer { scene.stop() }
        let daemon = scene.daemon
        var watch = try scene.watcher(log: "watch-1")
        try #require(
            try await WatchCommandTests.eventually { watch.logged("sync 1: start: applied generation 1") },
            "\(watch.text)")

        let seed: UInt64 = 15
        var random = SeededGenerator(seed: seed)
        // Time limits do not run `defer`: stop early rather than leave the daemon behind.
        let deadline = Date().addingTimeInterval(200)

        /// A probe container whose first action is an egress the policy denies its group.
        func deniedEgress(_ what: String) {
            let run = scene.deniedEgress()
            #expect(run.status == 0, "seed \(seed), \(what): \(run.stderr)")
            #expect(run.stdout == "end\n", "seed \(seed), \(what): a denied egress got through: \(run.stdout)")
        }
        /// A probe container reaches what its group's egress allows.
        func allowedEgress(_ what: String) {
            let allowed = scene.allowedEgress()
            #expect(
                allowed.stdout == "ok\nend\n",
                "seed \(seed), \(what): the allowed egress: \(allowed.stdout) \(allowed.stderr)\n\(watch.text)")
        }
        /// The address of a container on `front`, "" if it has none.
        func address(_ name: String) -> String {
            daemon.docker(["inspect", "-f", "{{(index .NetworkSettings.Networks \"front\").IPAddress}}", name]).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        /// Whether DOCKER-USER drops the other egress of the running container `name` at its
        /// current address: the rule that keeps a probe from port 81.
        func ruled(_ name: String) -> Bool {
            let ip = address(name)
            return !ip.isEmpty
                && AlongsideDockerDaemonTests.rules(daemon, "DOCKER-USER").contains {
                    $0.contains(" \(ip)/32 ") && $0.contains("other egress of \(name)\"")
                }
        }

        // 1. No watcher runs: containers start, and nothing but the rules left in the kernel
        // stands between them and what the policy denies.
        watch.kill9()
        let firstLog = watch.text
        let starts = 4 + Int(random.next() % 3)
        let publishAt = Int(random.next() % UInt64(starts))
        var started = 0
        for start in 0..<starts where Date() < deadline {
            if start == publishAt {
                // An allow-listed publish, tried from a source the list does not name.
                let answered = try scene.publishProbed()
                #expect(
                    answered == "0", "seed \(seed), no watcher: the publish answered a source off its list: \(answered)"
                )
            }
            deniedEgress("no watcher, probe \(start)")
            started += 1
        }
        #expect(started == starts, "seed \(seed): \(started) of \(starts) probes before the deadline")

        // The watcher starts again on the same state and takes in what started meanwhile.
        watch = try scene.watcher(log: "watch-2")
        try #require(try await WatchCommandTests.eventually { watch.logged("sync 1: start: ") }, "\(watch.text)")
        #expect(
            try await WatchCommandTests.eventually(seconds: 10) { scene.officeReachesPub() },
            "seed \(seed), the watcher again: the allow-listed source: \(AlongsideDockerDaemonTests.rules(daemon, "DOCKER-USER"))\n\(watch.text)"
        )
        allowedEgress("the watcher again")

        // 2. The daemon is killed with a probe container that tries the denied egress again and
        // again and says so if one gets through; the daemon starts it again.
        try daemon.docker([
            [
                "run", "-d", "--name", "looper", "--restart", "always", "--label", "role=probe", "--network", "front",
                "tiny:1", "/bin/busybox", "sh", "-c",
                "echo start; while true; do /bin/busybox timeout 2 /bin/busybox nc -w 1 \(scene.world).2 81 </dev/null && echo LEAK || echo denied; /bin/busybox sleep 0.2; done",
            ]
        ])
        try #require(
            try await WatchCommandTests.eventually { ruled("looper") },
            "seed \(seed): \(AlongsideDockerDaemonTests.rules(daemon, "DOCKER-USER"))\n\(watch.text)")
        let before =
            "looper at \(address("looper")), pub at \(address("pub")); rules before the crash:\n\(AlongsideDockerDaemonTests.rules(daemon, "DOCKER-USER").joined(separator: "\n"))"
        daemon.crash()
        // A daemon without live-restore: the watcher forgets every container at once (a sync
        // with none), long before a daemon could start again.
        #expect(
            try await WatchCommandTests.eventually {
                watch.logged("lost the Docker daemon at unix://\(daemon.socket)")
                    && watch.logged("until it is back no container is known")
                    && watch.logged(": lost the daemon: applied generation")
            },
            "\(watch.text)")
        try daemon.restart()
        let atRestart =
            "rules as the daemon answered again:\n\(AlongsideDockerDaemonTests.rules(daemon, "DOCKER-USER").joined(separator: "\n"))\nFORWARD:\n\(AlongsideDockerDaemonTests.rules(daemon, "FORWARD").joined(separator: "\n"))"
        #expect(
            try await WatchCommandTests.eventually {
                watch.logged("reconnected to the Docker daemon at unix://\(daemon.socket)")
            },
            "\(watch.text)")
        /// The looper's lines since it last started.
        func sinceStart() -> [Substring] {
            let lines = daemon.docker(["logs", "looper"]).stdout.split(separator: "\n")
            return Array(lines.suffix(from: (lines.lastIndex(of: "start") ?? -1) + 1))
        }
        try #require(
            try await WatchCommandTests.eventually {
                daemon.docker(["logs", "looper"]).stdout.components(separatedBy: "start\n").count > 2
                    && ruled("looper")
            },
            "seed \(seed), the looper after the restart: \(daemon.docker(["logs", "looper"]).stdout)\n\(AlongsideDockerDaemonTests.rules(daemon, "DOCKER-USER"))\n\(watch.text)"
        )
        // Converged: the looper keeps trying under its rules.
        let triedBefore = sinceStart().count
        #expect(
            try await WatchCommandTests.eventually { sinceStart().count >= triedBefore + 3 },
            "seed \(seed): the looper stopped trying: \(daemon.docker(["logs", "looper"]).stdout)")
        let looperLog = daemon.docker(["logs", "looper"]).stdout
        let restart =
            "\(looperLog)\n\(before)\n\(atRestart)\nlooper now at \(address("looper")); rules now:\n\(AlongsideDockerDaemonTests.rules(daemon, "DOCKER-USER").joined(separator: "\n"))\n\(watch.text)"
        #expect(
            sinceStart().dropFirst(triedBefore).allSatisfy { $0 == "denied" },
            "seed \(seed), after the watcher's sync: \(restart)")
        // dockerd hands the addresses out again from the start of each subnet when it starts,
        // and starts the looper before it answers: at the address of a container the restart
        // left stopped (pub), whose rules would let it through. The watcher, having lost a
        // daemon without live-restore, knows no container until it is back.
        #expect(!looperLog.contains("LEAK"), "seed \(seed), through the daemon's restart: \(restart)")
        deniedEgress("after the daemon's restart")
        allowedEgress("after the daemon's restart")

        // Errors: none, but for failing to reach the daemon while it was down.
        #expect(!firstLog.contains(" error "), "\(firstLog)")
        let errors = watch.text.split(separator: "\n").filter {
            $0.contains(" error ") && !$0.contains("cannot reach the Docker daemon")
        }
        #expect(errors.isEmpty, "\(watch.text)")
    }
}
