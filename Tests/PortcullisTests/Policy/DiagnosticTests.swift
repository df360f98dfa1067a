import Foundation
import PortcullisCompiler
import PortcullisNet
import PortcullisPolicy
import PortcullisSyntax
import Testing

/// Loads and checks in-memory policy files; returns the diagnostics.
func diagnose(_ files: [String: String], root: String = "main.policy") -> [Diagnostic] {
    let (loaded, loadDiagnostics) = PolicyLoader.load(root) { path in
        guard let text = files[(path as NSString).lastPathComponent] else { throw CocoaError(.fileNoSuchFile) }
        return text
    }
    if !loadDiagnostics.isEmpty { return loadDiagnostics }
    if case .failure(let error) = Checker.check(loaded) { return error.diagnostics }
    return []
}

/// One bad policy: the first error's line and column and a piece of its message (and hint).
struct BadPolicy: CustomTestStringConvertible, Sendable {
    let text: String
    let line: Int
    let column: Int
    let message: String
    var hint: String? = nil
    var extraFiles: [String: String] = [:]

    var testDescription: String { message }
}

private let bridge = "network bridge {\n    bridge docker0\n    subnet 172.17.0.0/16\n}\n"
private let dualStack = "network n {\n    bridge br-n\n    subnet 198.18.9.0/24\n    subnet fd00:9::/64\n}\n"

@Suite struct DiagnosticTests {
    static let cases: [BadPolicy] = [
        // Syntax
        BadPolicy(
            text: "hots {\n}\n", line: 1, column: 1, message: "unknown statement 'hots'", hint: "did you mean 'host'?"),
        BadPolicy(text: "network {\n}\n", line: 1, column: 9, message: "expected a name after 'network', found '{'"),
        BadPolicy(
            text: "network front\n    bridge br0\n", line: 2, column: 5,
            message: "expected '{' to open the network block"),
        BadPolicy(
            text: "network front {\n    bridge br0\n", line: 3, column: 1,
            message: "expected '}' to close the network block opened at line 1"),
        BadPolicy(
            text: "network n {\n    brige br0\n}\n", line: 2, column: 5, message: "unknown network setting 'brige'",
            hint: "did you mean 'bridge'?"),
        BadPolicy(
            text: "network n {\n    bridge\n}\n", line: 2, column: 11,
            message: "expected an interface name after 'bridge'"),
        BadPolicy(
            text: "network n {\n    bridge br0 extra\n}\n", line: 2, column: 16,
            message: "expected end of line after 'bridge', found 'extra'"),
        BadPolicy(text: "include \"other.policy\n", line: 1, column: 9, message: "unterminated string"),
        BadPolicy(
            text: "network n {\n    bridge br\u{e9}\n}\n", line: 2, column: 14, message: "unexpected character U+E9"),
        // Columns count characters, not bytes: 'é' in a string and a comment, CRLF line ends.
        BadPolicy(
            text: "host {\r\n    log-drops prefix \"d\u{e9}j\u{e0}\" rate 5/fortnight # r\u{e9}sum\u{e9}\r\n}\r\n",
            line: 2, column: 34, message: "invalid rate '5/fortnight'"),
        BadPolicy(
            text: "network n {\n    bridge \u{1F1EB}\u{1F1F7}\n}\n", line: 2, column: 12,
            message: "unexpected character U+1F1EBU+1F1F7"),
        BadPolicy(text: "include \"a\u{e9}\r\n", line: 1, column: 9, message: "unterminated string"),
        BadPolicy(
            text: "include other.policy\n", line: 1, column: 9, message: "expected a quoted file name after 'include'"),
        BadPolicy(text: bridge + "allow a b\n", line: 5, column: 9, message: "expected '->' in 'allow'"),
        BadPolicy(text: bridge + "allow a -> b port 80 port 81\n", line: 5, column: 22, message: "'port' given twice"),
        BadPolicy(
            text: "group g {\n", line: 2, column: 1, message: "expected '}' to close the group list opened at line 1"),
        // Names
        BadPolicy(
            text: bridge + "container bridge {\n    attach bridge 172.17.0.2\n}\n", line: 5, column: 11,
            message: "duplicate name 'bridge': already declared as a network at line 1"),
        BadPolicy(
            text: bridge + "container 9lives {\n    attach bridge 172.17.0.2\n}\n", line: 5, column: 11,
            message: "invalid container name '9lives'"),
        BadPolicy(
            text: bridge + "container any {\n    attach bridge 172.17.0.2\n}\n", line: 5, column: 11,
            message: "'any' is a reserved word"),
        BadPolicy(
            text: bridge + "container c {\n    attach brigde 172.17.0.2\n}\n", line: 6, column: 12,
            message: "unknown network 'brigde'", hint: "did you mean 'bridge'?"),
        BadPolicy(
            text:
                "container c {\n    attach late 172.17.0.2\n}\nnetwork late {\n    bridge br-late\n    subnet 172.17.0.0/16\n}\n",
            line: 2, column: 12, message: "network 'late' is declared after container 'c'"),
        BadPolicy(
            text: bridge + "group g { bridge }\n", line: 5, column: 11,
            message: "group members must be containers; 'bridge' is a network"),
        BadPolicy(
            text: bridge + "container c {\n    attach bridge 172.17.0.2\n}\nallow c -> c service nope\n", line: 8,
            column: 22, message: "unknown service 'nope'"),
        BadPolicy(
            text: bridge
                + "container c {\n    attach bridge 172.17.0.2\n    publish 80 -> 80 from ofice\n}\naddresses office { 203.0.113.0/24 }\n",
            line: 7, column: 27, message: "unknown address set 'ofice'", hint: "did you mean 'office'?"),
        BadPolicy(
            text: bridge + "allow ghost -> bridge\n", line: 5, column: 7,
            message: "unknown container, group or network 'ghost'"),
        // Addresses
        BadPolicy(
            text: bridge + "container c {\n    attach bridge 10.0.0.2\n}\n", line: 6, column: 19,
            message: "address 10.0.0.2 is outside the subnet 172.17.0.0/16 of network 'bridge'"),
        BadPolicy(
            text: bridge
                + "container a {\n    attach bridge 172.17.0.2\n}\ncontainer b {\n    attach bridge 172.17.0.2\n}\n",
            line: 9, column: 19, message: "address 172.17.0.2 is already used by container 'a'"),
        BadPolicy(
            text: bridge + "network other {\n    bridge br-o\n    subnet 172.17.128.0/24\n}\n", line: 7, column: 12,
            message: "subnet 172.17.128.0/24 overlaps 172.17.0.0/16 of network 'bridge'"),
        BadPolicy(
            text: "network n {\n    bridge br0\n    subnet 10.1.2.3/16\n}\n", line: 3, column: 12,
            message: "subnet '10.1.2.3/16' has host bits set",
            hint: "did you mean 10.1.0.0/16? Set the bridge address with 'gateway'"),
        BadPolicy(
            text: "network n {\n    bridge br0\n    subnet 10.1.0.0/16\n    gateway 10.2.0.1\n}\n", line: 4, column: 13,
            message: "gateway 10.2.0.1 is outside the subnet 10.1.0.0/16"),
        BadPolicy(
            text: "network n {\n    bridge br0\n    subnet 10.1.0.0/16\n    gateway 10.1.0.0\n}\n", line: 4, column: 13,
            message: "is the network address of 10.1.0.0/16"),
        BadPolicy(
            text: bridge + "container c {\n    attach bridge 172.17.0.2\n    attach bridge fd00::2\n}\n", line: 7,
            column: 19, message: "fd00::2 is IPv6 but network 'bridge' has no IPv6 subnet"),
        BadPolicy(
            text: "network n {\n    bridge br0\n    subnet 10.1.0.0/16\n    gateway fd00::1\n}\n", line: 4, column: 13,
            message: "gateway 'fd00::1' is IPv6 but the network has no IPv6 subnet"),
        BadPolicy(
            text: bridge + "container c {\n    attach bridge 172.17.0.300\n}\n", line: 6, column: 19,
            message: "invalid container address '172.17.0.300'"),
        BadPolicy(
            text:
                "network n {\n    bridge br0\n    subnet 10.1.0.0/16\n    subnet fd00::/64\n}\ncontainer c {\n    attach n fd00::2\n}\n",
            line: 7, column: 14, message: "attach 'n' with an IPv4 address first"),
        BadPolicy(
            text: "network n {\n    subnet 10.1.0.0/16\n}\n", line: 1, column: 9, message: "network 'n' has no bridge"),
        BadPolicy(
            text: "network n {\n    bridge br0\n}\n", line: 1, column: 9, message: "network 'n' has no IPv4 subnet"),
        BadPolicy(
            text: "network n {\n    bridge br0\n    subnet fd00::/64\n    subnet fd01::/64\n}\n", line: 4, column: 12,
            message: "second IPv6 subnet"),
        BadPolicy(
            text: "network n {\n    bridge br0\n    subnet 10.1.0.0/33\n}\n", line: 3, column: 12,
            message: "invalid prefix length in '10.1.0.0/33'"),
        BadPolicy(
            text: "network n {\n    bridge br0\n    subnet 10.1.0.0/16\n    host-binding ::1\n}\n", line: 4, column: 18,
            message: "host-binding must be an IPv4 address"),
        BadPolicy(
            text: bridge + "container c {\n    attach bridge 172.17.0.2 mac 02:42:zz:00:00:01\n}\n", line: 6,
            column: 34, message: "invalid MAC address"),
        // Publishes
        BadPolicy(
            text: bridge + "container c {\n    attach bridge 172.17.0.2\n    publish 8000-8002 -> 80/tcp\n}\n", line: 7,
            column: 26, message: "range length mismatch: 3 host ports for 1 container port"),
        BadPolicy(
            text: bridge + "container c {\n    attach bridge 172.17.0.2\n    publish 70000 -> 80\n}\n", line: 7,
            column: 13, message: "port out of range in '70000'"),
        BadPolicy(
            text: bridge + "container c {\n    attach bridge 172.17.0.2\n    publish 9000-8000 -> 80\n}\n", line: 7,
            column: 13, message: "port range '9000-8000' ends before it starts"),
        BadPolicy(
            text: bridge
                + "container a {\n    attach bridge 172.17.0.2\n    publish 8080 -> 80\n}\ncontainer b {\n    attach bridge 172.17.0.3\n    publish 127.0.0.1:8080 -> 81/tcp\n}\n",
            line: 11, column: 5, message: "host port 8080/tcp is already published by container 'a' (line 7)"),
        BadPolicy(
            text: dualStack
                + "container a {\n    attach n 198.18.9.2\n    attach n fd00:9::2\n    publish [::]:8080 -> 80\n}\ncontainer b {\n    attach n 198.18.9.3\n    attach n fd00:9::3\n    publish 8080 -> 81/tcp\n}\n",
            line: 14, column: 5, message: "host port 8080/tcp is already published by container 'a' (line 9)"),
        BadPolicy(
            text: bridge + "container c {\n    attach bridge 172.17.0.2\n    publish ::1:8080 -> 80\n}\n", line: 7,
            column: 13, message: "IPv6 host address must be in brackets"),
        BadPolicy(
            text: bridge + "container c {\n    attach bridge 172.17.0.2\n    publish 8080/udp -> 80\n}\n", line: 7,
            column: 13, message: "the protocol goes after the container port"),
        BadPolicy(
            text: bridge + "container c {\n    attach bridge 172.17.0.2\n    publish 8080 -> 80/icmp\n}\n", line: 7,
            column: 24, message: "unknown protocol 'icmp'"),
        BadPolicy(
            text: bridge + "container c {\n    attach bridge 172.17.0.2\n    publish-all\n}\n", line: 7, column: 5,
            message: "'publish-all' needs exposed ports"),
        BadPolicy(
            text: bridge + "container c {\n    attach bridge 172.17.0.2\n    publish [fd00::1]:80 -> 80\n}\n", line: 7,
            column: 5, message: "host address fd00::1 is IPv6 but container 'c' has no IPv6 address"),
        BadPolicy(
            text: "host {\n    ephemeral-ports 40000-40001\n}\n" + bridge
                + "container c {\n    attach bridge 172.17.0.2\n    expose 1/tcp, 2/tcp, 3/tcp\n    publish-all\n}\n",
            line: 11, column: 5, message: "no free port left in the ephemeral range 40000-40001"),
        BadPolicy(
            text: bridge + "container c {\n    attach bridge 172.17.0.2\n    publish 80/tcp chosen 8080\n}\n", line: 7,
            column: 5,
            message: "host port 8080 is outside the ephemeral range 32768-60999: the daemon cannot have chosen it"),
        BadPolicy(
            text: bridge
                + "container c {\n    attach bridge 172.17.0.2\n    publish 32769 -> 81\n    publish 80/tcp chosen 32769\n}\n",
            line: 8, column: 5, message: "host port 32769/tcp is taken: the daemon cannot have chosen it"),
        BadPolicy(
            text: bridge + "container c {\n    attach bridge 172.17.0.2\n    publish 8080 -> 80 chosen 32769\n}\n",
            line: 7,
            column: 31, message: "'chosen' names the port the daemon chose, and this publish names its host port"),
        BadPolicy(
            text: bridge + "container c {\n    attach bridge 172.17.0.2\n    publish 80/tcp chosen 32769-32770\n}\n",
            line: 7, column: 27, message: "the daemon chooses one host port, not '32769-32770'"),
        // Interface names
        BadPolicy(
            text: "network n {\n    bridge br-this-is-too-long\n    subnet 10.1.0.0/16\n}\n", line: 2, column: 12,
            message: "interface name 'br-this-is-too-long' is 19 bytes long"),
        BadPolicy(
            text: "network n {\n    bridge br/0\n    subnet 10.1.0.0/16\n}\n", line: 2, column: 12,
            message: "interface name 'br/0' contains '/'"),
        BadPolicy(
            text: "network n {\n    bridge eth+\n    subnet 10.1.0.0/16\n}\n", line: 2, column: 12,
            message: "interface name 'eth+' contains '+'"),
        BadPolicy(
            text: "host {\n    external eth0, wlan;0\n}\n", line: 2, column: 20,
            message: "interface name 'wlan;0' contains ';'"),
        BadPolicy(
            text: bridge + "network other {\n    bridge docker0\n    subnet 10.1.0.0/16\n}\n", line: 6, column: 12,
            message: "bridge 'docker0' is already used by network 'bridge'"),
        // Includes
        BadPolicy(
            text: "include \"b.policy\"\n", line: 1, column: 9,
            message: "include cycle: main.policy -> b.policy -> main.policy",
            extraFiles: ["b.policy": "include \"main.policy\"\n"]),
        BadPolicy(
            text: "include \"missing.policy\"\n", line: 1, column: 9,
            message: "cannot read policy file 'missing.policy'"),
        BadPolicy(text: "include \"/etc/passwd\"\n", line: 1, column: 9, message: "include path must be relative"),
        // Host settings and text that reaches the ruleset
        BadPolicy(text: "host {\n}\nhost {\n}\n", line: 3, column: 1, message: "second host block"),
        BadPolicy(text: "host {\n    icc deny\n    icc allow\n}\n", line: 3, column: 5, message: "'icc' set twice"),
        BadPolicy(
            text: "network bridge {\n    bridge docker0\n    subnet 172.17.0.0/16\n    masquerade on\n}\n"
                + "host {\n    ip-masquerade off\n}\n", line: 4, column: 5,
            message: "'masquerade on' contradicts the host's 'ip-masquerade off' (line 7)",
            hint:
                "bridge docker0 is Docker's default network, whose masquerade is the daemon's --ip-masq; set it in one place"
        ),
        BadPolicy(text: "host {\n    log-drops rate lots\n}\n", line: 2, column: 20, message: "invalid rate 'lots'"),
        BadPolicy(
            text: "host {\n    log-drops prefix \"x\\\" -j ACCEPT\"\n}\n", line: 2, column: 22,
            message: "log prefix contains a quote or backslash"),
        BadPolicy(
            text: "host {\n    log-drops prefix \"a-very-long-log-prefix-that-the-kernel-cuts\"\n}\n", line: 2,
            column: 22, message: "log prefix is longer than 29 bytes"),
        BadPolicy(
            text: "network n {\n    bridge br0\n    subnet 10.1.0.0/16\n    internal\n    masquerade on\n}\n", line: 5,
            column: 5, message: "an internal network cannot masquerade"),
        BadPolicy(
            text: "host {\n    userland-proxy maybe\n}\n", line: 2, column: 20,
            message: "expected 'on' or 'off', found 'maybe'"),
        // Gateway modes
        BadPolicy(
            text: "network n {\n    bridge br0\n    subnet 10.1.0.0/16\n    gateway-mode direct\n}\n", line: 4,
            column: 18, message: "expected 'nat', 'routed' or 'nat-unprotected', found 'direct'",
            hint: "gateway-mode is Docker's com.docker.network.bridge.gateway_mode_ipv4; nat is the default"),
        BadPolicy(
            text: "network n {\n    bridge br0\n    subnet 10.1.0.0/16\n    internal\n    gateway-mode routed\n}\n",
            line: 5, column: 5, message: "an internal network has no gateway mode"),
        BadPolicy(
            text: "network n {\n    bridge br0\n    subnet 10.1.0.0/16\n    gateway-mode\n}\n", line: 4, column: 17,
            message: "expected 'nat', 'routed' or 'nat-unprotected' after 'gateway-mode'"),
        BadPolicy(
            text: "network n {\n    bridge br0\n    subnet 10.1.0.0/16\n    gateway-mod routed\n}\n", line: 4,
            column: 5, message: "unknown network setting 'gateway-mod'", hint: "did you mean 'gateway-mode'?"),
    ]

    @Test(arguments: cases)
    func reportsTheError(_ bad: BadPolicy) throws {
        var files = bad.extraFiles
        files["main.policy"] = bad.text
        let diagnostics = diagnose(files)
        let first = try #require(
            diagnostics.filter { $0.severity == .error }.sorted { $0.range.start < $1.range.start }.first {
                $0.message.contains(bad.message)
            }, "no error containing \"\(bad.message)\" in \(diagnostics)")
        #expect(first.range.start.line == bad.line)
        #expect(first.range.start.column == bad.column)
        if let hint = bad.hint { #expect(first.hint == hint) }
    }

    /// The daemon's --icc and --ip-masq configure docker0 alone: without it they do nothing.
    @Test func hostDaemonFlagsWithoutTheDefaultNetworkWarn() throws {
        let (loaded, _) = PolicyLoader.load("inline.policy") { _ in
            "host {\n    icc deny\n    ip-masquerade off\n}\nnetwork n {\n    bridge br-n\n    subnet 198.18.1.0/24\n}\n"
        }
        let policy = try Checker.check(loaded).get()
        #expect(
            policy.warnings.map { "\($0.range.start.line):\($0.range.start.column): \($0.message)" } == [
                "2:5: host 'icc' has no effect: it configures only Docker's default network (bridge docker0), which the policy does not declare",
                "3:5: host 'ip-masquerade' has no effect: it configures only Docker's default network (bridge docker0), which the policy does not declare",
            ])
        #expect(policy.warnings.allSatisfy { $0.severity == .warning && $0.hint != nil })
        #expect(policy.network("n")?.icc == true && policy.network("n")?.masquerade == true)
    }

    /// A host port is held per family, as Docker 20.10's allocator and proxies hold it: `[::]:P`
    /// beside `ADDRESS:P` and `0.0.0.0:P` is no clash (seen on a real daemon); a publish without
    /// an address binds IPv6 only where the allocator binds it (an IPv6 address, or the proxy).
    @Test func hostPortsAreHeldPerFamily() {
        let text =
            "host {\n    userland-proxy off\n}\n" + dualStack + bridge
            + "container a {\n    attach n 198.18.9.2\n    attach n fd00:9::2\n    publish [::]:8080 -> 80\n}\n"
            + "container b {\n    attach n 198.18.9.3\n    publish 198.18.0.1:8080 -> 80\n    publish 0.0.0.0:8081 -> 81\n}\n"
            + "container c {\n    attach n 198.18.9.4\n    attach n fd00:9::4\n    publish [::]:8081 -> 81\n}\n"
            + "container d {\n    attach bridge 172.17.0.2\n    publish 8082 -> 80\n}\n"
            + "container e {\n    attach n 198.18.9.5\n    attach n fd00:9::5\n    publish [::]:8082 -> 80\n}\n"
        #expect(diagnose(["main.policy": text]).isEmpty)
        let proxied = text.replacingOccurrences(of: "userland-proxy off", with: "userland-proxy on")
        #expect(
            diagnose(["main.policy": proxied]).map(\.message) == [
                "host port 8082/tcp is already published by container 'd' (line 30)"
            ])
    }

    @Test func severalErrorsInOneRun() {
        let text =
            bridge + """
                container a {
                    attach bridge 172.17.9999.2
                    publish 8080 -> 80/tcpp
                }
                allow a -> nobody
                egress a -> nowhere
                """
        let diagnostics = diagnose(["main.policy": text])
        #expect(diagnostics.count == 4)
        #expect(Set(diagnostics.map(\.range.start.line)) == [6, 7, 9, 10])
    }

    @Test func syntaxErrorsInSeveralStatementsAreAllReported() {
        let text = "network a {\n    bridge\n}\nnetwork b\n    bridge br-b\n}\ncontainer c {\n    attach\n}\nbogus\n"
        let diagnostics = diagnose(["main.policy": text])
        #expect(diagnostics.count >= 3)
        #expect(Set(diagnostics.map(\.range.start.line)) == [2, 5, 8, 10])
    }

    @Test func renderedDiagnosticQuotesTheLineWithACaret() {
        var sources = SourceStore()
        sources.add(file: "p.policy", text: "network n {\n    bridge br/0\n}\n")
        let diagnostic = Diagnostic(
            "interface name 'br/0' contains '/'",
            at: SourceRange(start: SourceLocation(file: "p.policy", line: 2, column: 12), length: 4),
            hint: "use letters")
        #expect(
            diagnostic.rendered(sources: sources)
                == "p.policy:2:12: error: interface name 'br/0' contains '/'\n        bridge br/0\n               ^~~~\n    hint: use letters"
        )
    }

    /// Files with CRLF line ends are quoted too (as Characters, "\r\n" is not "\n").
    @Test func renderedDiagnosticQuotesLinesOfCRLFFiles() {
        var sources = SourceStore()
        sources.add(file: "p.policy", text: "network n {\r\n    bridge br/0\r\n}\r\n")
        let diagnostic = Diagnostic(
            "bad", at: SourceRange(start: SourceLocation(file: "p.policy", line: 2, column: 12), length: 4))
        #expect(
            diagnostic.rendered(sources: sources)
                == "p.policy:2:12: error: bad\n        bridge br/0\n               ^~~~")
        #expect(sources.line(4, of: "p.policy") == "" && sources.line(5, of: "p.policy") == nil)
    }

    @Test func aDiamondIncludeIsReadOnce() {
        let files = [
            "main.policy": "include \"a.policy\"\ninclude \"b.policy\"\n",
            "a.policy": "include \"common.policy\"\n",
            "b.policy": "include \"common.policy\"\n",
            "common.policy": bridge,
        ]
        #expect(diagnose(files).isEmpty)
    }

    /// What goes into a ruleset is either validated or escaped: hostile names never parse.
    @Test(arguments: [
        "container \"web\" {\n}\n", "container web;drop {\n}\n", "container web\" {\n}\n", "container we$b {\n}\n",
        "network n {\n    bridge \"br0 -j ACCEPT\"\n    subnet 10.0.0.0/8\n}\n",
    ])
    func hostileNamesAreRejected(_ text: String) {
        #expect(!diagnose(["main.policy": bridge + text]).isEmpty)
    }
}
