import Foundation
import Testing

/// The `portcullis` executable: exit codes, where output goes, and the error format.
@Suite struct CommandLineTests {
    /// The built executable; `PORTCULLIS_BINARY` names another (a build with its own scratch path).
    static let binary =
        ProcessInfo.processInfo.environment["PORTCULLIS_BINARY"] ?? Repo.root + "/.build/debug/portcullis"

    func portcullis(_ arguments: [String]) -> CommandResult { run([Self.binary] + arguments) }

    /// `inventory` and `import --from docker` without a daemon: one line with a hint, exit 2.
    @Test func dockerCommandsWithoutADaemonSayWhatToDo() {
        let socket = "unix:///tmp/pc-no-daemon-\(getpid()).sock"
        for arguments in [
            ["inventory", "--docker-host", socket], ["import", "--from", "docker", "--docker-host", socket],
        ] {
            let result = portcullis(arguments)
            #expect(result.status == 2)
            #expect(
                result.stderr
                    == "error: no Docker daemon at \(socket): the socket does not exist (hint: is dockerd running? --docker-host or DOCKER_HOST name another socket)\n"
            )
        }
    }

    @Test func compileWritesTheRulesetToStdout() {
        let result = portcullis(["compile", Repo.policies + "/icc-off.policy"])
        #expect(result.status == 0)
        #expect(result.stdout == Repo.read(Repo.golden + "/icc-off/docker-20.10.iptables"))
        #expect(result.stderr.isEmpty)
    }

    @Test func compileWritesToAFileWithDashO() throws {
        let path = NSTemporaryDirectory() + "portcullis-out-\(getpid()).nft"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = portcullis(["compile", Repo.policies + "/seed.policy", "--backend", "nftables", "-o", path])
        #expect(result.status == 0 && result.stdout.isEmpty)
        #expect(Repo.read(path) == Repo.read(Repo.golden + "/seed/docker-1.5.nft"))
    }

    @Test func policyErrorsExitTwoWithFileLineColumn() throws {
        let path = NSTemporaryDirectory() + "portcullis-bad-\(getpid()).policy"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "network n {\n    bridge br/0\n    subnet 10.0.0.0/8\n}\n".write(
            toFile: path, atomically: true, encoding: .utf8)
        let result = portcullis(["compile", path])
        #expect(result.status == 2)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.hasPrefix("\(path):2:12: error: interface name 'br/0' contains '/'\n"))
        #expect(result.stderr.contains("               ^~~~\n"))
    }

    @Test(arguments: [
        ["compile", "/nonexistent/x.policy"], ["compile", "--layout", "docker-99", "policies/seed.policy"],
        ["compile", "--backend", "pf", "policies/seed.policy"], ["compile"], ["frobnicate"],
        ["compile", "policies/udp-sctp.policy", "--backend", "nftables"],
        ["compile", "policies/web-stack.policy", "--layout", "docker-1.5"],
    ])
    func badUsageExitsTwo(_ arguments: [String]) {
        let result = run([Self.binary] + arguments.map { $0.hasPrefix("policies/") ? Repo.root + "/" + $0 : $0 })
        #expect(result.status == 2, "\(result.stderr)")
        #expect(!result.stderr.isEmpty)
    }

    @Test func diffExitsZeroWhenGoldenFilesMatch() {
        let result = run([Self.binary, "diff", Repo.policies + "/web-stack.policy", "--golden", Repo.golden])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("17 golden files match"))
    }

    @Test func diffExitsOneAndPrintsTheDiffWhenTheyDiffer() throws {
        let scratch = NSTemporaryDirectory() + "portcullis-diff-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try FileManager.default.createDirectory(atPath: scratch + "/seed", withIntermediateDirectories: true)
        let golden = Repo.read(Repo.golden + "/seed/docker-1.5.iptables").replacingOccurrences(
            of: ":FORWARD ACCEPT", with: ":FORWARD DROP")
        try golden.write(toFile: scratch + "/seed/docker-1.5.iptables", atomically: true, encoding: .utf8)
        let result = run([Self.binary, "diff", Repo.policies + "/seed.policy", "--golden", scratch])
        #expect(result.status == 1)
        #expect(result.stdout.contains("-:FORWARD DROP [0:0]\n+:FORWARD ACCEPT [0:0]\n"))
    }

    /// The commands that read hosts, end to end through stdin: the logic is tested in-process
    /// (ImportTests, AuditTests, EvaluatorTests); these check the wiring and the exit codes.
    @Test func importReadsStdinAndWritesThePolicyToStdout() {
        let rules = Repo.read(Repo.golden + "/web-stack/docker-20.10.iptables")
        let result = run([Self.binary, "import", "-"], input: rules)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.hasPrefix("detected layout docker-20.10\n"))
        #expect(result.stdout.contains("network net-br-front {\n"))
        let unknown = run([Self.binary, "import", "-", "--layout", "docker-30"], input: rules)
        #expect(unknown.status == 2 && unknown.stderr.hasPrefix("error: import reads the layouts"))
    }

    @Test func auditExitsOneOnFindingsWithTheJSONSchema() {
        let rules = Repo.read(Repo.fixtures + "/docker-20.10/s03-hostip-udp.rules")
        let result = run([Self.binary, "audit", "--ruleset", "-", "--format", "json"], input: rules)
        #expect(result.status == 1)
        #expect(result.stdout.contains("\"schema\": \"portcullis-audit/1\""))
        let both = run([Self.binary, "audit", "--ruleset", "-", "--live"], input: rules)
        #expect(both.status == 2 && both.stderr.contains("give exactly one of --ruleset FILE and --live"))
    }

    @Test func explainWalksRulesFromStdin() {
        let rules = Repo.read(Repo.golden + "/web-stack/docker-20.10.iptables")
        let result = run(
            [
                Self.binary, "explain", "--ruleset", "-", "--from", "198.18.1.10", "--to", "198.18.2.10", "--port",
                "8000/tcp",
            ],
            input: rules)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("accept: 198.18.1.10 on br-front -> 198.18.2.10 on br-back port 8000/tcp"))
    }

    @Test func helpTeachesTheCommands() {
        let result = run([Self.binary, "--help"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("compile") && result.stdout.contains("diff"))
        let compileHelp = run([Self.binary, "compile", "--help"])
        #expect(compileHelp.stdout.contains("docker-20.10") && compileHelp.stdout.contains("Examples"))
    }
}
