import PortcullisNet
import Testing

@Suite struct NetTests {
    @Test(arguments: [
        ("172.17.0.1", "172.17.0.1"), ("0.0.0.0", "0.0.0.0"), ("255.255.255.255", "255.255.255.255"),
        ("fd00::1", "fd00::1"), ("FD00:0:0:0:0:0:0:1", "fd00::1"), ("::", "::"), ("::1", "::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("2001:0db8:0000:0000:0000:ff00:0042:8329", "2001:db8::ff00:42:8329"),
        ("::ffff:198.18.0.1", "::ffff:c612:1"), ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
    ])
    func addressesParseAndPrintCanonically(_ input: String, _ canonical: String) throws {
        let address = try #require(IPAddress(input))
        #expect(address.description == canonical)
        #expect(IPAddress(canonical) == address)
    }

    @Test(arguments: [
        "", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.-4", " 1.2.3.4", "1::2::3", "12345::",
        "1:2:3:4:5:6:7:8:9",
        "g::1", ":::", "1.2.3.4/8",
    ])
    func invalidAddressesAreRejected(_ input: String) {
        #expect(IPAddress(input) == nil)
    }

    @Test func prefixesKnowTheirBounds() throws {
        let subnet = try IPPrefix.parse("172.17.42.1/16").get()
        #expect(subnet.network.description == "172.17.0.0/16")
        #expect(subnet.first.description == "172.17.0.0" && subnet.last.description == "172.17.255.255")
        #expect(subnet.hasHostBits)
        #expect(subnet.contains(IPAddress("172.17.200.3")!) && !subnet.contains(IPAddress("172.18.0.1")!))
        #expect(subnet.overlaps(try IPPrefix.parse("172.0.0.0/8").get()))
        #expect(!subnet.overlaps(try IPPrefix.parse("172.18.0.0/16").get()))
        #expect(!subnet.overlaps(try IPPrefix.parse("fd00::/8").get()))
        let v6 = try IPPrefix.parse("fd00:80::1/64").get()
        #expect(v6.network.description == "fd00:80::/64" && v6.last.description == "fd00:80::ffff:ffff:ffff:ffff")
        #expect(try IPPrefix.parse("0.0.0.0/0").get().contains(IPAddress("203.0.113.9")!))
        #expect(IPPrefix.parse("10.0.0.0/33") == .failure(.badLength(max: 32)))
        #expect(IPPrefix.parse("fd00::/129") == .failure(.badLength(max: 128)))
        #expect(IPPrefix.parse("x/8") == .failure(.badAddress))
    }

    @Test func portRanges() {
        #expect(PortRange.parse("80") == .success(PortRange(80)))
        #expect(PortRange.parse("8000-8010") == .success(PortRange(8000, 8010)))
        #expect(PortRange.parse("0") == .failure(.outOfRange))
        #expect(PortRange.parse("65536") == .failure(.outOfRange))
        #expect(PortRange.parse("90-80") == .failure(.reversed))
        #expect(PortRange.parse("http") == .failure(.notANumber))
        #expect(PortRange.parse("-5") == .failure(.notANumber))
        #expect(PortRange(8000, 8010).count == 11 && PortRange(8000, 8010).overlaps(PortRange(8010)))
    }

    @Test func interfaceNamesFollowTheKernelRules() {
        #expect(InterfaceName.validate("docker0") == nil)
        #expect(InterfaceName.validate("br-0123456789ab") == nil)  // Docker's 15-byte bridge names
        #expect(InterfaceName.validate("br-0123456789abc") == .tooLong(bytes: 16))
        #expect(InterfaceName.validate("") == .empty)
        #expect(InterfaceName.validate("..") == .reserved)
        #expect(InterfaceName.validate("a b") == .forbiddenCharacter(" "))
        #expect(InterfaceName.validate("eth0\"") == .forbiddenCharacter("\""))
    }

    @Test func rulesetTextRejectsWhatCouldBreakOutOfAQuotedToken() {
        #expect(RulesetText.problem(in: "portcullis: allow web -> api") == nil)
        #expect(RulesetText.problem(in: "x\" accept") != nil)
        #expect(RulesetText.problem(in: "x\\") != nil)
        #expect(RulesetText.problem(in: "line\nbreak") != nil)
        #expect(RulesetText.problem(in: String(repeating: "a", count: 129)) != nil)
    }
}
