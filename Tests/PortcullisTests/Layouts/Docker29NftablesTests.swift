import Foundation
import PortcullisCompiler
import Testing

/// The docker-29 layout with the nftables backend against the VERBATIM Docker 29.x nftables
/// dumps of docker-rules.md section 7 (moby's generated nftables docs, counters stripped by the
/// doc generator), kept as they are in Fixtures/docker-29-nftables. 7.1, 7.2 and 7.8 are whole
/// tables; 7.3 to 7.7 show only the chains that differ from 7.2 (everything else identical;
/// 7.6 and 7.7 are bridge1 in gateway modes routed and nat-unprotected); s79 is the pair of 7.9
/// unit goldens (ip and ip6 tables of one dual-stack network, counter values kept).
@Suite struct Docker29NftablesTests {
    static let directory = Repo.fixtures + "/docker-29-nftables"
    static let portmap = "s72-usernet-portmap"

    static var scenarios: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".policy") }
            .sorted().map { String($0.dropLast(".policy".count)) }
    }

    static func compile(_ scenario: String, backend: String = "nftables") throws -> String {
        let files = try Compiler().compile("\(directory)/\(scenario).policy", layout: "docker-29", backend: backend)
            .get()
        #expect(files.count == 1)
        return files[0].text
    }

    /// The one line the moby dumps print in a form libnftables 1.0.6 does not read back: newer
    /// nft names the output hook's priority -100 `dstnat`, 1.0.6 only accepts the number there.
    /// The unit goldens also keep counter values, which a ruleset to load does not carry.
    static func forThisNft(_ text: String) -> String {
        text.replacingOccurrences(
            of: "type nat hook output priority dstnat;", with: "type nat hook output priority -100;"
        ).replacingOccurrences(of: "counter packets 0 bytes 0", with: "counter")
    }

    /// `chain NAME {` ... `}` blocks (one tab in), by name, as the partial dumps list them.
    static func chains(_ text: String) -> [(name: String, text: String)] {
        var result: [(String, String)] = []
        var current: (name: String, lines: [String])?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if let match = line.wholeMatch(of: #/\tchain ([^ ]+) \{/#) { current = (String(match.1), []) }
            current?.lines.append(String(line))
            if line == "\t}", let chain = current {
                result.append((chain.name, chain.lines.joined(separator: "\n")))
                current = nil
            }
        }
        return result
    }

    /// What Docker's table is for a scenario: its dump, or 7.2 with the chains its dump lists.
    static func expected(_ scenario: String) -> String {
        let dump = Repo.read("\(directory)/\(scenario).nft")
        guard !dump.hasPrefix("table ") else { return forThisNft(dump) }
        var full = Repo.read("\(directory)/\(portmap).nft")
        for (name, text) in chains(dump) {
            let old = chains(full).first { $0.name == name }!.text
            full = full.replacingOccurrences(of: old, with: text)
        }
        return forThisNft(full)
    }

    @Test func everyExpressibleVerbatimScenarioIsThere() {
        #expect(
            Self.scenarios == [
                "s71-new-daemon", "s72-usernet-portmap", "s73-usernet-portmap-lo", "s74-usernet-portmap-noicc",
                "s75-usernet-portmap-noproxy", "s76-usernet-portmap-routed", "s77-usernet-portmap-natunprot",
                "s78-usernet-internal", "s79-unit-nat-dual-stack",
            ])
        for scenario in Self.scenarios {
            #expect(FileManager.default.fileExists(atPath: "\(Self.directory)/\(scenario).nft"))
        }
    }

    @Test(arguments: scenarios)
    func compilesToTheVerbatimTable(_ scenario: String) throws {
        let compiled = try Self.compile(scenario)
        let expected = Self.expected(scenario)
        #expect(
            compiled == expected,
            "\(UnifiedDiff.make(old: expected, new: compiled, oldName: "docker 29", newName: "compiled") ?? "")")
    }

    /// The partial dumps really name chains of the full table (a typo would compare nothing).
    @Test func partialDumpsReplaceExistingChains() {
        let full = Self.chains(Repo.read("\(Self.directory)/\(Self.portmap).nft")).map(\.name)
        for scenario in [
            "s73-usernet-portmap-lo", "s74-usernet-portmap-noicc", "s75-usernet-portmap-noproxy",
            "s76-usernet-portmap-routed", "s77-usernet-portmap-natunprot",
        ] {
            let listed = Self.chains(Repo.read("\(Self.directory)/\(scenario).nft")).map(\.name)
            #expect(!listed.isEmpty && listed.allSatisfy(full.contains), "\(scenario)")
        }
    }

    /// The iptables backend of the same layout is Docker 29's iptables firewaller, unchanged.
    @Test func iptablesBackendKeepsTheIptablesFirewaller() throws {
        let text = try Self.compile(Self.portmap, backend: "iptables")
        #expect(text.contains("-A DOCKER-FORWARD -j DOCKER-CT") && !text.contains("docker-bridges"))
    }
}

/// Where the policy's own rules go with Docker's nftables firewaller (no DOCKER-USER): the
/// `ip portcullis-user` table, marks for allows Docker would drop, and the raw chain that takes
/// over Docker's direct-access drops when an allowed flow crosses bridges.
@Suite struct Docker29NftablesUserRulesTests {
    static let base = Repo.read("\(Docker29NftablesTests.directory)/\(Docker29NftablesTests.portmap).policy")

    static func compile(_ extra: String) throws -> String {
        try compileInline(base + extra, layout: "docker-29", backend: .nftables).get()
    }

    /// The rules of one chain of one table, without indentation.
    static func rules(_ text: String, table: String, chain: String) -> [String] {
        guard let start = text.range(of: "table \(table) {\n"),
            let end = text.range(of: "\n}\n", range: start.upperBound..<text.endIndex)
        else { return [] }
        let tableText = String(text[start.upperBound..<end.upperBound])
        guard let found = Docker29NftablesTests.chains(tableText).first(where: { $0.name == chain }) else { return [] }
        return found.text.split(separator: "\n").dropFirst().dropLast().map {
            $0.trimmingCharacters(in: .whitespaces)
        }.filter { !$0.hasPrefix("type ") }
    }

    @Test func noPolicyRulesNoTableOfOurs() throws {
        let text = try Self.compile("")
        #expect(!text.contains("portcullis-user") && !text.contains("ALLOW FW MARK"))
    }

    /// A deny is a drop in our forward chain, which runs before Docker's; no mark is needed.
    @Test func denyIsADropBeforeDocker() throws {
        let text = try Self.compile("\ncontainer c2 {\n    attach bridge1 192.0.2.3\n}\ndeny c2 -> c1 port 80/tcp\n")
        #expect(text.contains("\tchain filter-FORWARD {\n\t\ttype filter hook forward priority -1; policy accept;"))
        #expect(
            Self.rules(text, table: "ip portcullis-user", chain: "filter-FORWARD") == [
                "ct state established,related accept comment \"portcullis: replies to accepted connections\"",
                "iifname \"bridge1\" oifname \"bridge1\" ip saddr 192.0.2.3 ip daddr 192.0.2.2 tcp dport 80 drop comment \"portcullis: deny c2 -> c1 port 80/tcp\"",
            ])
        #expect(!text.contains("ALLOW FW MARK") && !text.contains("meta mark"))
    }

    /// icc deny: Docker drops the flow at its ICC rule; the allow marks it and Docker's
    /// `--bridge-accept-fwmark` rule, above ICC, accepts it. Docker's raw drops stay its own.
    @Test func allowPastIccDenyUsesTheAcceptMark() throws {
        let base = Self.base.replacingOccurrences(of: "subnet 192.0.2.0/24", with: "subnet 192.0.2.0/24\n    icc deny")
        let text = try compileInline(
            base + "\ncontainer c2 {\n    attach bridge1 192.0.2.3\n}\nallow c2 -> c1 port 5432/tcp\n",
            layout: "docker-29", backend: .nftables
        ).get()
        #expect(
            Self.rules(text, table: "ip docker-bridges", chain: "filter-forward-in__bridge1") == [
                "ct state established,related counter accept",
                "meta mark & 0x10000000 == 0x10000000 counter accept comment \"ALLOW FW MARK\"",
                "iifname \"bridge1\" counter drop comment \"ICC\"",
                "ip daddr 192.0.2.2 tcp dport 80 counter accept",
                "counter drop comment \"UNPUBLISHED PORT DROP\"",
            ])
        #expect(
            Self.rules(text, table: "ip portcullis-user", chain: "filter-FORWARD").contains(
                "iifname \"bridge1\" oifname \"bridge1\" ip saddr 192.0.2.3 ip daddr 192.0.2.2 tcp dport 5432 meta mark set meta mark | 0x10000000 accept comment \"portcullis: allow c2 -> c1 port 5432/tcp\""
            ))
        #expect(
            Self.rules(text, table: "ip docker-bridges", chain: "raw-PREROUTING") == [
                "ip daddr 192.0.2.2 iifname != \"bridge1\" counter drop comment \"DROP DIRECT ACCESS\"",
                "ip daddr 192.0.2.3 iifname != \"bridge1\" counter drop comment \"DROP DIRECT ACCESS\"",
            ])
        #expect(!text.contains("table ip portcullis-user {\n\tchain raw-PREROUTING"))
    }

    /// Across bridges Docker's raw drops would stop the flow before any other table could
    /// accept it: the daemon runs with allow-direct-routing and our raw chain holds the drops,
    /// below the exceptions for the flow and its replies.
    @Test func allowAcrossBridgesMovesTheDirectAccessDrops() throws {
        let text = try Self.compile("\ncontainer c2 {\n    attach bridge 172.17.0.2\n}\nallow c2 -> c1 port 80/tcp\n")
        #expect(Self.rules(text, table: "ip docker-bridges", chain: "raw-PREROUTING").isEmpty)
        #expect(
            Self.rules(text, table: "ip portcullis-user", chain: "raw-PREROUTING") == [
                "iifname \"docker0\" ip saddr 172.17.0.2 ip daddr 192.0.2.2 tcp dport 80 accept comment \"portcullis: allow c2 -> c1 port 80/tcp\"",
                "iifname \"bridge1\" ip saddr 192.0.2.2 ip daddr 172.17.0.2 tcp sport 80 accept comment \"portcullis: allow c2 -> c1 port 80/tcp\"",
                "iifname != \"bridge1\" ip daddr 192.0.2.2 counter drop comment \"portcullis: no direct access to c1 (allow-direct-routing)\"",
                "iifname != \"docker0\" ip daddr 172.17.0.2 counter drop comment \"portcullis: no direct access to c2 (allow-direct-routing)\"",
            ])
        #expect(text.contains("meta mark & 0x10000000 == 0x10000000 counter accept comment \"ALLOW FW MARK\""))
    }

    /// Internal networks' chains have no fwmark rule, so nothing can let a flow in from another
    /// bridge (or past their ICC drop).
    @Test func allowIntoAnInternalNetworkIsRefused() throws {
        let policy = """
            network bridge {
                bridge docker0
                subnet 172.17.0.0/16
            }
            network data {
                bridge br-data
                subnet 198.18.5.0/24
                internal
            }
            container app {
                attach bridge 172.17.0.2
            }
            container db {
                attach data 198.18.5.2
            }
            allow app -> db@data port 5432/tcp

            """
        #expect((try? compileInline(policy, layout: "docker-29").get()) != nil)
        guard
            case .failure(.diagnostics(let diagnostics, _)) = compileInline(
                policy, layout: "docker-29", backend: .nftables)
        else {
            Issue.record("an allow into an internal network compiled")
            return
        }
        #expect(
            diagnostics.map(\.message) == [
                "layout docker-29 cannot express an allow into internal network 'data' with Docker's nftables firewaller"
            ])
        #expect(diagnostics.first?.range.start.line == 16)
    }

    /// IPv6: the ip6 table holds the networks with an IPv6 subnet; a publish binds [::] too
    /// unless it names an IPv4 address (itself or through host-binding); an IPv6 loopback
    /// publish gets no remote-loopback drop (::1 is not routable); flows get ip6 rules of ours.
    @Test func ipv6NetworksGetTheIp6Tables() throws {
        let policy = """
            network bridge {
                bridge docker0
                subnet 172.17.0.0/16
            }
            network v6 {
                bridge br-v6
                subnet 198.18.6.0/24
                subnet fd00:6::/64
                icc deny
            }
            container web {
                attach v6 198.18.6.2
                attach v6 fd00:6::2
                publish 8080 -> 80/tcp
                publish 127.0.0.1:9000 -> 9000/tcp
                publish [::1]:9001 -> 9001/tcp
            }
            container client {
                attach v6 198.18.6.3
                attach v6 fd00:6::3
            }
            allow client -> web port 80/tcp

            """
        let text = try compileInline(policy, layout: "docker-29", backend: .nftables).get()
        let tables = text.split(separator: "\n").filter { $0.hasPrefix("table ") }
        #expect(
            tables == [
                "table ip docker-bridges {", "table ip6 docker-bridges {", "table ip portcullis-user {",
                "table ip6 portcullis-user {",
            ])
        #expect(
            Self.rules(text, table: "ip6 docker-bridges", chain: "nat-prerouting-and-output") == [
                "iifname != \"br-v6\" ip6 saddr != fe80::/10 ip6 daddr ::1 tcp dport 9001 counter dnat to [fd00:6::2]:9001 comment \"DNAT\"",
                "iifname != \"br-v6\" ip6 saddr != fe80::/10 tcp dport 8080 counter dnat to [fd00:6::2]:80 comment \"DNAT\"",
            ])
        #expect(
            Self.rules(text, table: "ip6 docker-bridges", chain: "raw-PREROUTING") == [
                "ip6 daddr fd00:6::2 iifname != \"br-v6\" counter drop comment \"DROP DIRECT ACCESS\"",
                "ip6 daddr fd00:6::3 iifname != \"br-v6\" counter drop comment \"DROP DIRECT ACCESS\"",
            ])
        #expect(
            Self.rules(text, table: "ip6 portcullis-user", chain: "filter-FORWARD").contains(
                "iifname \"br-v6\" oifname \"br-v6\" ip6 saddr fd00:6::3 ip6 daddr fd00:6::2 tcp dport 80 meta mark set meta mark | 0x10000000 accept comment \"portcullis: allow client -> web port 80/tcp\""
            ))
        #expect(
            Self.rules(text, table: "ip6 docker-bridges", chain: "filter-forward-in__br-v6").contains(
                "meta mark & 0x10000000 == 0x10000000 counter accept comment \"ALLOW FW MARK\""))
        // docker0 has no IPv6 subnet: it is not in the ip6 table.
        #expect(Self.rules(text, table: "ip6 docker-bridges", chain: "filter-forward-in__docker0").isEmpty)
    }

    @Test func forwardPolicyDropIsRefused() {
        let policy = "host {\n    forward-policy drop\n}\n" + Self.base.split(separator: "}\n", maxSplits: 1)[1]
        guard
            case .failure(.diagnostics(let diagnostics, _)) = compileInline(
                policy, layout: "docker-29", backend: .nftables)
        else {
            Issue.record("forward-policy drop compiled")
            return
        }
        #expect(
            diagnostics.map(\.message) == [
                "layout docker-29 cannot express forward-policy drop with Docker's nftables firewaller"
            ])
    }
}

/// The kernel's verdict on every scenario: the text and the JSON load with libnftables in a
/// fresh namespace, to the same ruleset, and `nft list` prints Docker's dump back (with the
/// counters' zero values it adds).
@Suite(.enabled(if: Kernel.enabled, Kernel.reason), .serialized)
struct Docker29NftablesKernelTests {
    @Test(arguments: Docker29NftablesTests.scenarios)
    func loadsAndListsAsDockersDump(_ scenario: String) throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let text = try Docker29NftablesTests.compile(scenario)
        let json = try Docker29NftablesTests.compile(scenario, backend: "nftables-json")
        let namespace = try TestNamespace()
        let dry = try namespace.nftDryRun(text)
        #expect(dry.succeeded, "\(dry.error)")
        let (applied, listing) = try namespace.nftApplyAndList(text)
        try #require(applied.succeeded, "\(applied.error)")
        let other = try TestNamespace()
        let (appliedJSON, listingFromJSON) = try other.nftApplyAndList(json)
        #expect(appliedJSON.succeeded, "\(appliedJSON.error)")
        #expect(listing == listingFromJSON)
        let listed = listing.replacingOccurrences(of: "counter packets 0 bytes 0", with: "counter")
        // `nft list ruleset` puts no blank line between tables.
        let expected = Docker29NftablesTests.expected(scenario).replacingOccurrences(
            of: "}\n\ntable ", with: "}\ntable ")
        #expect(listed == expected)
    }
}
