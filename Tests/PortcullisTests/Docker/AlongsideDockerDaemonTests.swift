import Foundation
import PortcullisCompiler
import Testing

/// `apply --alongside-docker` beside a real dockerd 20.10 in a namespace of the test's own:
/// Docker's chains stay as the daemon wrote them, the policy's DOCKER-USER rules survive
/// `docker run`, `docker stop` and a daemon restart, and real connections show the policy's
/// flows, denials, egress and source allow-lists enforced on top of Docker's rules.
@Suite(.enabled(if: Kernel.enabled, Kernel.reason), .serialized)
struct AlongsideDockerDaemonTests {
    static let policy = """
        host { layout docker-20.10 }

        network bridge {
            bridge docker0
            subnet 172.17.0.0/16
        }

        network front {
            bridge br-front
            subnet 198.18.60.0/24
        }

        network back {
            bridge br-back
            subnet 198.18.61.0/24
        }

        container web {
            attach front 198.18.60.10
            publish 8080 -> 80/tcp from 198.18.63.2
        }

        container client {
            attach front 198.18.60.20
        }

        container api {
            attach back 198.18.61.10
        }

        container worker {
            attach back 198.18.61.20
        }

        allow client -> api port 9000/tcp
        deny client -> web port 81/tcp
        egress worker -> 198.18.63.2 port 80/tcp

        """

    static let commands: [[String]] = [
        ["network", "create", "--subnet", "198.18.60.0/24", "-o", "com.docker.network.bridge.name=br-front", "front"],
        ["network", "create", "--subnet", "198.18.61.0/24", "-o", "com.docker.network.bridge.name=br-back", "back"],
        ["run", "-d", "--name", "web", "--network", "front", "--ip", "198.18.60.10", "-p", "8080:80", "tiny:1"],
        ["run", "-d", "--name", "client", "--network", "front", "--ip", "198.18.60.20", "tiny:1"],
        ["run", "-d", "--name", "api", "--network", "back", "--ip", "198.18.61.10", "tiny:1"],
        ["run", "-d", "--name", "worker", "--network", "back", "--ip", "198.18.61.20", "tiny:1"],
    ]

    /// Probe servers started in containers' and the outside namespace; killed by PID.
    final class Servers {
        var processes: [Process] = []
        deinit {
            for process in processes where process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }

        func start(_ prefix: [String], ports: [String]) throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: prefix[0])
            process.arguments = Array(prefix.dropFirst()) + ["/usr/bin/python3", ContainerHost.probe, "serve"] + ports
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            processes.append(process)
            let ready = output.fileHandleForReading.availableData
            guard String(decoding: ready, as: UTF8.self).hasPrefix("ready") else {
                throw NamespaceError(message: "probe server \(prefix) did not start")
            }
        }
    }

    /// `nsenter` into a container's network namespace.
    static func inContainer(_ daemon: DockerDaemon, _ name: String) throws -> [String] {
        let pid = daemon.docker(["inspect", "-f", "{{.State.Pid}}", name]).stdout.trimmingCharacters(
            in: .whitespacesAndNewlines)
        try #require(Int(pid) ?? 0 > 0, "no PID for container \(name)")
        return ["/usr/bin/nsenter", "-t", pid, "-n"]
    }

    static func connects(_ prefix: [String], _ address: String, _ port: String, source: String? = nil) -> Bool {
        run(prefix + ["/usr/bin/python3", ContainerHost.probe, "connect", address, port] + (source.map { [$0] } ?? []))
            .status == 0
    }

    /// Every iptables line that does not name DOCKER-USER: Docker's chains.
    static func dockersChains(_ daemon: DockerDaemon) -> [Substring] {
        daemon.namespace.savedIptables().split(separator: "\n").filter { !$0.contains("DOCKER-USER") }
    }

    static func rules(_ daemon: DockerDaemon, _ chain: String) -> [String] {
        daemon.namespace.exec(["iptables-save"]).stdout.split(separator: "\n").filter { $0.hasPrefix("-A \(chain) ") }
            .map(String.init)
    }

    @Test(.timeLimit(.minutes(5)))
    func policyRulesStayOnTopOfDockersOwn() throws {
        try #require(DockerDaemon.available, "needs dockerd 20.10, its client and a static busybox")
        let daemon = try DockerDaemon()
        defer { daemon.stop() }
        try daemon.docker(Self.commands)
        // The outside world: a namespace behind a veth, 198.18.63.2 (allowed) and .200 (not).
        let outside = try daemon.outsideWorld(subnet: "198.18.63")
        let servers = Servers()
        try servers.start(try Self.inContainer(daemon, "web"), ports: ["80", "81"])
        try servers.start(try Self.inContainer(daemon, "api"), ports: ["9000"])
        try servers.start(["/usr/sbin/ip", "netns", "exec", outside.name], ports: ["80", "81"])
        let client = try Self.inContainer(daemon, "client")
        let worker = try Self.inContainer(daemon, "worker")
        let api = try Self.inContainer(daemon, "api")
        let world = ["/usr/sbin/ip", "netns", "exec", outside.name]

        // Docker's rules alone: networks isolated, icc open, egress open, the publish open to all.
        #expect(!Self.connects(client, "198.18.61.10", "9000"))
        #expect(Self.connects(client, "198.18.60.10", "81"))
        #expect(Self.connects(worker, "198.18.63.2", "81"))
        #expect(Self.connects(world, "198.18.63.1", "8080", source: "198.18.63.200"))

        let scratch = try DockerDaemon.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let policyFile = scratch + "/host.policy"
        try Self.policy.write(toFile: policyFile, atomically: true, encoding: .utf8)
        let portcullis = { (arguments: [String]) in
            daemon.namespace.exec([CommandLineTests.binary] + arguments + ["--state-dir", scratch + "/state"])
        }
        let docker = Self.dockersChains(daemon)
        let apply = portcullis(["apply", policyFile, "--alongside-docker"])
        try #require(apply.status == 0, "\(apply.stdout)\(apply.stderr)")
        #expect(Self.dockersChains(daemon) == docker, "Docker's chains changed")
        let wanted = Self.rules(daemon, "DOCKER-USER")
        #expect(wanted.count > 5 && wanted.last == "-A DOCKER-USER -j RETURN")

        func policyHolds(_ when: String) {
            #expect(Self.connects(client, "198.18.61.10", "9000"), "\(when): allowed flow across bridges")
            #expect(!Self.connects(client, "198.18.60.10", "81"), "\(when): denied flow")
            #expect(Self.connects(client, "198.18.60.10", "80"), "\(when): Docker's icc for the rest")
            #expect(Self.connects(worker, "198.18.63.2", "80"), "\(when): egress allowed")
            #expect(!Self.connects(worker, "198.18.63.2", "81"), "\(when): egress restricted")
            #expect(Self.connects(api, "198.18.63.2", "81"), "\(when): unrestricted egress")
            #expect(Self.connects(world, "198.18.63.1", "8080", source: "198.18.63.2"), "\(when): allow-listed source")
            #expect(!Self.connects(world, "198.18.63.1", "8080", source: "198.18.63.200"), "\(when): other source")
        }
        policyHolds("after apply")

        // The daemon goes on: containers come and go; its chains change, DOCKER-USER stays.
        try daemon.docker([
            ["run", "-d", "--name", "extra", "--network", "back", "--ip", "198.18.61.30", "-p", "8082:80", "tiny:1"],
            ["run", "-d", "--name", "later", "--network", "front", "--ip", "198.18.60.40", "tiny:1"],
            ["stop", "-t", "1", "later"],
        ])
        #expect(Self.dockersChains(daemon) != docker, "docker run wrote no rules")
        #expect(Self.rules(daemon, "DOCKER-USER") == wanted)
        #expect(Self.rules(daemon, "FORWARD").first == "-A FORWARD -j DOCKER-USER")
        policyHolds("after docker run and stop")
        let settled = portcullis(["plan", policyFile, "--alongside-docker"])
        #expect(settled.status == 0, "\(settled.stdout)\(settled.stderr)")

        // A daemon restart programs its rules again; plan and apply put the jump first if it moved.
        try daemon.restart()
        #expect(Self.rules(daemon, "DOCKER-USER") == wanted, "the restart changed DOCKER-USER")
        let forward = Self.rules(daemon, "FORWARD")
        let moved =
            forward.first != "-A FORWARD -j DOCKER-USER" || forward.filter { $0.contains("DOCKER-USER") }.count != 1
        let plan = portcullis(["plan", policyFile, "--alongside-docker"])
        #expect(plan.status == (moved ? 1 : 0), "\(plan.stdout)\(plan.stderr)")
        #expect(plan.stdout.contains("repair: ") == moved, "\(forward)\n\(plan.stdout)")
        let reapply = portcullis(["apply", policyFile, "--alongside-docker"])
        #expect(reapply.status == 0, "\(reapply.stderr)")
        #expect(reapply.stdout.contains("repaired: ") == moved, "\(reapply.stdout)")
        #expect(Self.rules(daemon, "FORWARD").first == "-A FORWARD -j DOCKER-USER")
        #expect(Self.rules(daemon, "DOCKER-USER") == wanted)

        // Rollback gives DOCKER-USER back to Docker as it was, and Docker's chains stay.
        let before = Self.dockersChains(daemon)
        while portcullis(["rollback"]).status == 0 {}
        #expect(Self.rules(daemon, "DOCKER-USER") == ["-A DOCKER-USER -j RETURN"])
        #expect(Self.dockersChains(daemon) == before)
    }

    /// A Compose stack's policy by service name with no address, bound to the live daemon and
    /// applied beside it: the rules follow a container that comes back at another address, and
    /// the container that took its old one gets nothing it was not given.
    static let composeStack = """
        group shop-web { compose shop/web }
        group shop-api { compose shop/api }

        allow shop-web -> shop-api port 9000/tcp

        """

    @Test(.timeLimit(.minutes(5)))
    func unpinnedPolicyFollowsTheDaemon() throws {
        try #require(DockerDaemon.available, "needs dockerd 20.10, its client and a static busybox")
        let daemon = try DockerDaemon()
        defer { daemon.stop() }
        let labels = { (service: String) in
            ["--label", "com.docker.compose.project=shop", "--label", "com.docker.compose.service=\(service)"]
        }
        try daemon.docker([
            ["network", "create", "--subnet", "198.18.64.0/24", "-o", "com.docker.network.bridge.name=br-web", "web"],
            ["network", "create", "--subnet", "198.18.65.0/24", "-o", "com.docker.network.bridge.name=br-api", "api"],
            ["run", "-d", "--name", "shop-web-1", "--network", "web"] + labels("web") + ["tiny:1"],
            ["run", "-d", "--name", "shop-api-1", "--network", "api"] + labels("api") + ["tiny:1"],
        ])
        let scratch = try DockerDaemon.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let policyFile = scratch + "/shop.policy"
        try Self.composeStack.write(toFile: policyFile, atomically: true, encoding: .utf8)
        let apply = {
            daemon.namespace.exec([
                CommandLineTests.binary, "apply", policyFile, "--alongside-docker", "--inventory", "docker",
                "--docker-host", "unix://" + daemon.socket, "--state-dir", scratch + "/state",
            ])
        }
        let first = apply()
        try #require(first.status == 0, "\(first.stdout)\(first.stderr)")
        #expect(first.stderr.contains("bound to the Docker daemon at unix://\(daemon.socket)"), "\(first.stderr)")

        let servers = Servers()
        try servers.start(try Self.inContainer(daemon, "shop-api-1"), ports: ["9000"])
        let web = try Self.inContainer(daemon, "shop-web-1")
        #expect(Self.connects(web, "198.18.65.2", "9000"), "the allowed flow across bridges")

        // The api comes back at another address; a stranger takes its old one.
        try daemon.docker([
            ["stop", "-t", "1", "shop-api-1"],
            ["run", "-d", "--name", "stranger", "--network", "api", "--ip", "198.18.65.2", "tiny:1"],
            ["start", "shop-api-1"],
        ])
        let moved = daemon.docker(["inspect", "-f", "{{.NetworkSettings.Networks.api.IPAddress}}", "shop-api-1"])
            .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try #require(moved != "198.18.65.2" && !moved.isEmpty, "shop-api-1 is at \(moved)")
        try servers.start(try Self.inContainer(daemon, "stranger"), ports: ["9000"])
        try servers.start(try Self.inContainer(daemon, "shop-api-1"), ports: ["9000"])
        #expect(Self.connects(web, "198.18.65.2", "9000"), "stale rules: the stranger has the api's access")

        let second = apply()
        try #require(second.status == 0, "\(second.stdout)\(second.stderr)")
        #expect(Self.connects(web, moved, "9000"), "the flow follows the api to \(moved)")
        #expect(!Self.connects(web, "198.18.65.2", "9000"), "the stranger at the old address")
    }
}
