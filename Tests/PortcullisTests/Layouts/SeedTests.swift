import Foundation
import PortcullisCompiler
import Testing

/// The seed document's Docker 1.5 host: policies/seed.policy compiled for docker-1.5, loaded with
/// iptables-restore into a fresh namespace, must list exactly as the seed printed it.
@Suite(.enabled(if: Kernel.enabled, Kernel.reason))
struct SeedTests {
    /// Whitespace runs become one space; current iptables prints protocol `all` as `0`.
    static func normalise(_ listing: String) -> [String] {
        listing.split(separator: "\n").map { line in
            line.split(separator: " ", omittingEmptySubsequences: true).map { $0 == "all" ? "0" : String($0) }
                .joined(separator: " ")
        }.filter { !$0.isEmpty }
    }

    @Test func seedListingsMatch() throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let files = try Compiler().compile(Repo.policies + "/seed.policy", layout: "docker-1.5", backend: "iptables")
            .get()
        let namespace = try TestNamespace()
        let restore = namespace.exec(["iptables-restore"], input: files[0].text)
        try #require(restore.status == 0, "iptables-restore: \(restore.stderr)")
        let filter = namespace.exec(["iptables", "-L", "-n"]).stdout
        let nat = namespace.exec(["iptables", "-t", "nat", "-L", "-n"]).stdout
        #expect(Self.normalise(filter) == Self.normalise(Repo.read(Repo.fixtures + "/seed/iptables-L-filter.txt")))
        #expect(Self.normalise(nat) == Self.normalise(Repo.read(Repo.fixtures + "/seed/iptables-L-nat.txt")))
    }
}
