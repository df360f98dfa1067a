import Foundation
import PortcullisCompiler
import Testing

/// What users of command-line tools expect: --version, a suggestion for a mistyped command,
/// `-` for stdin, system messages for paths that cannot be written, output a restore tool can
/// load, a backend chosen to fit the layout, and exit codes that say what happened.
@Suite struct CommandLineConventionsTests {
    func portcullis(_ arguments: [String], input: String? = nil) -> CommandResult {
        run([CommandLineTests.binary] + arguments, input: input)
    }

    /// Long work says what it is doing on a terminal (a line rewritten in place, cleared at the
    /// end), and nothing of it reaches a pipe.
    @Test func progressIsShownOnATerminalOnly() throws {
        let rules = Repo.golden + "/web-stack/docker-20.10.iptables"
        let piped = portcullis(["audit", "--ruleset", rules])
        #expect(!piped.stderr.contains("\u{1B}[K") && !piped.stderr.contains("reading"), "\(piped.stderr)")
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/script"), "needs script(1) for a terminal")
        let terminal = run([
            "/usr/bin/script", "-qec", "\(CommandLineTests.binary) audit --ruleset \(rules)", "/dev/null",
        ])
        #expect(terminal.stdout.contains("\r\u{1B}[Kreading \(rules) (3 KB)…"), "\(terminal.stdout)")
        #expect(terminal.stdout.contains("\r\u{1B}[Klooking for risks in"), "\(terminal.stdout)")
        // Cleared before the report is written.
        #expect(terminal.stdout.contains("…\r\u{1B}[K"), "\(terminal.stdout)")
    }

    @Test func versionIsPrinted() {
        let result = portcullis(["--version"])
        #expect(result.status == 0 && result.stdout.wholeMatch(of: #/\d+\.\d+\.\d+\n/#) != nil, "\(result.stdout)")
    }

    @Test func aMistypedCommandGetsASuggestion() {
        let result = portcullis(["compyle", "policies/web-stack.policy"])
        #expect(result.status == 2)
        #expect(result.stderr.hasPrefix("error: unknown command 'compyle'; did you mean 'compile'?\n"))
        #expect(result.stderr.contains("commands: compile, check, plan, apply"))
        #expect(!result.stderr.contains("confirm-deadline"), "hidden commands are not offered")
    }

    @Test func aMistypedLayoutGetsASuggestion() {
        let result = portcullis(["compile", Repo.policies + "/web-stack.policy", "--layout", "docker-2.10"])
        #expect(result.status == 2 && result.stderr.contains("did you mean 'docker-20.10'?"), "\(result.stderr)")
    }

    /// A layout or backend named in the policy is checked at its line, with a suggestion.
    @Test func anUnknownLayoutInThePolicyIsAnErrorAtItsLine() {
        let result = portcullis(["compile", "-"], input: "host {\n    layout docker-99\n}\n")
        #expect(result.status == 2)
        #expect(result.stderr.hasPrefix("<stdin>:2:5: error: unknown layout 'docker-99'\n"), "\(result.stderr)")
        #expect(result.stderr.contains("hint: did you mean 'docker-29'? layouts are: docker-1.5, docker-20.10"))
        let backend = portcullis(["compile", "-"], input: "host {\n    backend nftable\n}\n")
        #expect(backend.stderr.hasPrefix("<stdin>:2:5: error: unknown backend 'nftable'\n"), "\(backend.stderr)")
    }

    /// A block left open is one error naming it, not one per line of the next block.
    @Test func anUnclosedBlockIsNamed() {
        let policy =
            "network front {\n    bridge br-front\n    subnet 198.18.1.0/24\n\n"
            + "container web {\n    attach front 198.18.1.10\n}\n"
        let result = portcullis(["compile", "-"], input: policy)
        #expect(result.status == 2)
        #expect(
            result.stderr.hasPrefix(
                "<stdin>:5:1: error: missing '}' to close the network front block opened at line 1\n"),
            "\(result.stderr)")
        #expect(result.stderr.hasSuffix("1 error\n"))
    }

    /// Docker's `-p 8080:80` gets the policy's spelling as a hint.
    @Test func aDockerStylePublishGetsThePolicySpelling() {
        let policy =
            "network n {\n    bridge br-n\n    subnet 198.18.1.0/24\n}\n"
            + "container c {\n    attach n 198.18.1.2\n    publish 8080:80\n}\n"
        let result = portcullis(["compile", "-"], input: policy)
        #expect(result.status == 2)
        #expect(
            result.stderr.contains("hint: Docker's -p 8080:80 is written 'publish 8080 -> 80' here"), "\(result.stderr)"
        )
    }

    /// An address set is not one endpoint: explain says which address to give instead.
    @Test func explainSaysHowToNameAnAddressOfASet() {
        let result = portcullis([
            "explain", Repo.policies + "/egress-only.policy", "--from", "builder", "--to", "package-mirrors",
            "--port", "443/tcp",
        ])
        #expect(result.status == 2)
        #expect(result.stderr.contains("'package-mirrors' is an address set"), "\(result.stderr)")
        #expect(result.stderr.contains("203.0.113.10"))
    }

    @Test func aPolicyIsReadFromStdin() {
        let result = portcullis(["compile", "-"], input: Repo.read(Repo.policies + "/icc-off.policy"))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == Repo.read(Repo.golden + "/icc-off/docker-20.10.iptables"))
        let broken = portcullis(["compile", "-"], input: "network n {\n    bridge br/0\n}\n")
        #expect(broken.status == 2 && broken.stderr.hasPrefix("<stdin>:2:12: error:"), "\(broken.stderr)")
    }

    @Test func unreadableAndUnwritablePathsSayWhy() {
        let directory = portcullis(["compile", Repo.policies])
        #expect(directory.status == 2 && directory.stderr.contains("cannot read policy file"))
        #expect(directory.stderr.contains(": it is a directory"))
        let policy = Repo.policies + "/icc-off.policy"
        let intoDirectory = portcullis(["compile", policy, "-o", NSTemporaryDirectory()])
        #expect(intoDirectory.status == 2 && intoDirectory.stderr.contains("it is a directory; name a file"))
        let nowhere = portcullis(["compile", policy, "-o", "/nonexistent/x"])
        #expect(
            nowhere.status == 2 && nowhere.stderr == "error: cannot write /nonexistent/x: No such file or directory\n")
        #expect(!(intoDirectory.stderr + nowhere.stderr).contains("NSCocoaErrorDomain"))
    }

    /// Output on stdout is what iptables-restore or ip6tables-restore loads: a ruleset with both
    /// families needs --family.
    @Test func stdoutHoldsOneFamilyUnlessBothAreAskedFor() {
        let policy = Repo.policies + "/dual-stack.policy"
        let mixed = portcullis(["compile", policy, "--layout", "docker-28"])
        #expect(mixed.status == 2 && mixed.stdout.isEmpty && mixed.stderr.contains("--family ipv4 or --family ipv6"))
        let ipv4 = portcullis(["compile", policy, "--layout", "docker-28", "--family", "ipv4"])
        #expect(ipv4.status == 0 && ipv4.stdout == Repo.read(Repo.golden + "/dual-stack/docker-28.iptables"))
        let ipv6 = portcullis(["compile", policy, "--layout", "docker-28", "--family", "ipv6"])
        #expect(ipv6.status == 0 && ipv6.stdout == Repo.read(Repo.golden + "/dual-stack/docker-28.ip6tables"))
        let both = portcullis(["compile", policy, "--layout", "docker-28", "--family", "both"])
        #expect(both.stdout == ipv4.stdout + "#### ip6tables\n" + ipv6.stdout)
    }

    /// `--layout native` alone picks the backend native is written for, even over the
    /// policy's `backend iptables`; an explicit --backend that does not fit is still an error.
    @Test func theBackendFollowsTheLayout() {
        let policy = Repo.policies + "/web-stack.policy"
        let native = portcullis(["compile", policy, "--layout", "native"])
        #expect(native.status == 0 && native.stdout == Repo.read(Repo.golden + "/web-stack/native.nft"))
        let refused = portcullis(["compile", policy, "--layout", "native", "--backend", "iptables"])
        #expect(refused.status == 2 && refused.stderr.contains("use --backend nftables or nftables-json"))
    }

    /// The checker's warnings reach stderr with their line, and the command still succeeds.
    @Test func warningsArePrintedWithTheirLine() {
        let policy =
            "network data {\n    bridge br-data\n    subnet 198.18.20.0/24\n    internal\n}\n"
            + "container db {\n    attach data 198.18.20.3\n    publish 5432 -> 5432/tcp\n}\n"
        let result = portcullis(["compile", "-"], input: policy)
        #expect(result.status == 0)
        #expect(result.stderr.hasPrefix("<stdin>:8:5: warning: 'publish' has no effect"), "\(result.stderr)")
    }

    @Test func explainExitsOneWhenTheVerdictIsNotTheExpectedOne() {
        let arguments = [
            "explain", Repo.policies + "/web-stack.policy", "--from", "web", "--to", "api", "--port", "8000/tcp",
        ]
        #expect(portcullis(arguments + ["--expect", "accept"]).status == 0)
        let wrong = portcullis(arguments + ["--expect", "drop"])
        #expect(wrong.status == 1 && wrong.stderr.contains("expected drop, but the rules accept it"))
    }

    /// Help is written in paragraphs: no line of a discussion is cut in the middle of a
    /// sentence at a wide terminal.
    @Test func helpParagraphsAreNotHardWrapped() {
        for command in ["compile", "check", "plan", "apply", "rollback", "explain", "audit", "import", "fmt", "graph"] {
            let help = run(["env", "COLUMNS=5000", CommandLineTests.binary, command, "--help"]).stdout
            let overview = help.components(separatedBy: "USAGE:")[0].split(separator: "\n")
            for line in overview.dropFirst() where !line.hasPrefix(" ") && line.count > 40 {
                #expect(
                    line.hasSuffix(".") || line.hasSuffix(":") || line.hasSuffix(")"),
                    "\(command): a paragraph breaks mid-sentence: \(line)")
            }
        }
    }
}

/// `scripts/install.sh`: the binary, completions that complete policy files and option values,
/// and the systemd unit pointing at the installed binary.
@Suite struct InstallTests {
    @Test func installsTheBinaryCompletionsAndUnit() throws {
        let stage = NSTemporaryDirectory() + "portcullis-install-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: stage) }
        let result = run([
            "bash", Repo.root + "/scripts/install.sh", "--destdir", stage, "--prefix", "/opt/pc", "--binary",
            CommandLineTests.binary,
        ])
        try #require(result.status == 0, "\(result.stderr)")
        #expect(run([stage + "/opt/pc/bin/portcullis", "--version"]).status == 0)
        let bash = stage + "/opt/pc/share/bash-completion/completions/portcullis"
        #expect(run(["bash", "-n", bash]).status == 0)
        let completion = Repo.read(bash)
        #expect(completion.contains("-fX '!*.@(policy)'"), "policy files complete")
        #expect(completion.contains("'docker-20.10'") && completion.contains("'nftables-json'"), "values complete")
        #expect(!Repo.read(stage + "/opt/pc/share/zsh/site-functions/_portcullis").isEmpty)
        #expect(!Repo.read(stage + "/opt/pc/share/fish/vendor_completions.d/portcullis.fish").isEmpty)
        let unit = Repo.read(stage + "/etc/systemd/system/portcullis-apply.service")
        #expect(unit.contains("ExecStart=/opt/pc/bin/portcullis apply ${POLICY}"))
        #expect(!unit.contains("/usr/local/bin"))
    }

    /// systemd accepts the unit (where systemd-analyze exists): installed with a prefix that
    /// holds a real binary, it reports nothing but the man pages a staging install leaves out.
    @Test func systemdAcceptsTheUnit() throws {
        guard run(["which", "systemd-analyze"]).status == 0 else { return }
        let prefix = NSTemporaryDirectory() + "portcullis-unit-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: prefix) }
        let install = run([
            "bash", Repo.root + "/scripts/install.sh", "--destdir", prefix, "--prefix", prefix, "--binary",
            CommandLineTests.binary,
        ])
        try #require(install.status == 0, "\(install.stderr)")
        let unit = prefix + "/portcullis-apply.service"
        try Repo.read(prefix + "/etc/systemd/system/portcullis-apply.service").replacingOccurrences(
            of: prefix + "/bin", with: prefix + prefix + "/bin"
        ).write(toFile: unit, atomically: true, encoding: .utf8)
        let verify = run(["systemd-analyze", "verify", unit])
        let complaints = (verify.stdout + verify.stderr).split(separator: "\n").filter { !$0.contains("man ") }
        #expect(complaints.isEmpty, "\(complaints)")
    }
}

/// Diagnostics are coloured on a terminal (unless NO_COLOR), as compilers colour them.
@Suite struct ColourTests {
    @Test func severityWordsAreColoured() {
        let text = "p.policy:2:5: error: unknown layout 'x'\n    layout x\n    hint: did you mean 'y'?"
        let coloured = StandardConsole.coloured(text)
        #expect(coloured.hasPrefix("p.policy:2:5: \u{1B}[1;31merror\u{1B}[0m: unknown layout 'x'\n"))
        #expect(coloured.hasSuffix("    layout x\n    hint: did you mean 'y'?"), "only the severity word")
        #expect(StandardConsole.coloured("warning: w").hasPrefix("\u{1B}[1;35mwarning"))
        #expect(StandardConsole.coloured("rolled back generation 2") == "rolled back generation 2")
    }

    /// Piped, as in every test, nothing is coloured: escape codes would garble logs and files.
    @Test func pipesGetPlainText() {
        let result = run([CommandLineTests.binary, "compyle"])
        #expect(result.stderr.hasPrefix("error: unknown command"))
    }
}
