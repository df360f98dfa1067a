import Foundation
import PortcullisCompiler
import Testing

/// `inventory` and `import --from docker` against a real dockerd 20.10 in a namespace of the
/// test's own: the imported policy must compile to exactly the iptables-save the daemon wrote.
@Suite(.enabled(if: Kernel.enabled, Kernel.reason), .serialized)
struct DockerInventoryTests {
    /// Networks with and without a bridge name, masquerade off, internal, icc off; containers
    /// with and without --ip, -p with and without a host address, -p PORT, -P, Compose labels,
    /// a second network connected later; the daemon without the userland proxy (which the API
    /// does not report, so the import reads it from the rules).
    static let commands: [[String]] = [
        ["network", "create", "--subnet", "198.18.20.0/24", "-o", "com.docker.network.bridge.name=br-front", "front"],
        ["network", "create", "--subnet", "198.18.21.0/24", "back"],
        [
            "network", "create", "--subnet", "198.18.22.0/24", "-o", "com.docker.network.bridge.name=br-nomasq",
            "-o", "com.docker.network.bridge.enable_ip_masquerade=false", "nomasq",
        ],
        [
            "network", "create", "--internal", "--subnet", "198.18.23.0/24", "-o",
            "com.docker.network.bridge.name=br-intra", "intra",
        ],
        [
            "network", "create", "--subnet", "198.18.24.0/24", "-o", "com.docker.network.bridge.name=br-quiet",
            "-o", "com.docker.network.bridge.enable_icc=false", "quiet",
        ],
        [
            "run", "-d", "--name", "web", "--network", "front", "--ip", "198.18.20.10", "-p", "8080:80",
            "-p", "127.0.0.1:8443:443", "--label", "com.docker.compose.project=shop",
            "--label", "com.docker.compose.service=web", "tiny:1",
        ],
        [
            "run", "-d", "--name", "api", "--network", "back", "-p", "9000-9001:9000-9001",
            "--label", "com.docker.compose.project=shop", "--label", "com.docker.compose.service=api", "tiny:1",
        ],
        ["network", "connect", "quiet", "api"],
        ["run", "-d", "--name", "dyn", "-P", "tiny:1"],
        ["run", "-d", "--name", "db", "--network", "intra", "--ip", "198.18.23.5", "tiny:1"],
        ["run", "-d", "--name", "solo", "--network", "nomasq", "--ip", "198.18.22.7", "-p", "7000", "tiny:1"],
        ["run", "-d", "--name", "worker", "--network", "quiet", "-p", "5353:53/udp", "tiny:1"],
    ]

    @Test(.timeLimit(.minutes(5)))
    func importedPolicyCompilesToTheDaemonsRules() throws {
        try #require(DockerDaemon.available, "needs dockerd 20.10, its client and a static busybox")
        let daemon = try DockerDaemon(flags: ["--userland-proxy=false"])
        defer { daemon.stop() }
        try daemon.docker(Self.commands)

        let snapshot = daemon.directory + "/inventory.json"
        let inventory = inProcess {
            try $0.runInventory(InventoryRequest(source: .daemon(host: "unix://" + daemon.socket), output: snapshot))
        }
        #expect(inventory.status == 0, "\(inventory.stderr)")
        #expect(inventory.stderr.contains("read 6 bridge network(s) and 6 running container(s)"))

        let rules = daemon.namespace.savedIptables()
        let imported = inProcess {
            try $0.runImport(
                ImportRequest(
                    inventory: .snapshot(snapshot), rules: .text(rules, source: "iptables-save", format: .iptablesSave))
            )
        }
        try #require(imported.status == 0, "\(imported.stderr)")
        let policy = imported.stdout
        let policyFile = daemon.directory + "/imported.policy"
        try policy.write(toFile: policyFile, atomically: true, encoding: .utf8)
        let compiled = compiledRuleset(policyFile)
        try #require(compiled.status == 0, "\(compiled.stderr)\n\(policy)")
        #expect(compiled.stdout == rules, "\(policy)")
        // Docker's own names, the compose groups, what was asked for each port.
        for line in [
            "network front {", "container web {", "    publish 127.0.0.1:8443 -> 443/tcp",
            "    publish 9000-9001 -> 9000-9001/tcp", "    publish 7000/tcp", "    publish-all",
            "group shop { web, api }", "group shop-api { api }", "    userland-proxy off",
        ] {
            #expect(policy.contains(line + "\n"), "\(line) in\n\(policy)")
        }
        // The shop stack written by Compose service with no address, bound to the live daemon,
        // compiles as the imported policy with the same allow-list and flows written in.
        let live = InventorySource.daemon(host: "unix://" + daemon.socket)
        let pinned = policy.replacingOccurrences(
            of: "    publish 8080 -> 80/tcp\n", with: "    publish 8080 -> 80/tcp from office\n")
        let pinnedFile = daemon.directory + "/pinned.policy"
        try (pinned + InventoryBindingTests.flows).write(toFile: pinnedFile, atomically: true, encoding: .utf8)
        let unpinnedFile = daemon.directory + "/unpinned.policy"
        try InventoryBindingTests.unpinned.write(toFile: unpinnedFile, atomically: true, encoding: .utf8)
        let bound = inProcess {
            try $0.runCompile(unpinnedFile, layout: nil, backend: nil, output: nil, inventory: live)
        }
        try #require(bound.status == 0, "\(bound.stderr)")
        #expect(bound.stdout == compiledRuleset(pinnedFile).stdout)
        #expect(bound.stdout.contains("-s 198.51.100.0/24 -d 198.18.20.10/32"))

        let canonical = inProcess { $0.runFormat([policyFile], mode: .check) }
        #expect(canonical.status == 0, "fmt --check: \(canonical.stderr)")
        if let keep = ProcessInfo.processInfo.environment["PORTCULLIS_KEEP_IMPORT"] {
            try? (policy + "\n#### snapshot\n" + Repo.read(snapshot)).write(
                toFile: keep, atomically: true, encoding: .utf8)
        }
    }
}
