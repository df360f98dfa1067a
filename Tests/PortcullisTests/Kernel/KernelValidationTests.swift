import Foundation
import Testing

/// The kernel's own verdict on every golden file, each in a fresh network namespace:
/// iptables (ip6tables) files load with iptables-restore (ip6tables-restore) and read back byte
/// for byte with iptables-save (ip6tables-save), so our text is in iptables' canonical form; nft text and JSON pass a libnftables dry run,
/// and applying either gives the same ruleset.
@Suite(.enabled(if: Kernel.enabled, Kernel.reason), .serialized)
struct KernelValidationTests {
    static func goldens(_ fileExtension: String) -> [String] {
        let root = Repo.golden
        let folders = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted()
        return folders.flatMap { folder in
            ((try? FileManager.default.contentsOfDirectory(atPath: root + "/" + folder)) ?? []).sorted()
                .filter { $0.hasSuffix("." + fileExtension) }.map { folder + "/" + $0 }
        }
    }

    @Test(arguments: goldens("iptables"))
    func iptablesGoldenLoadsAndSavesIdentically(_ golden: String) throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let text = Repo.read(Repo.golden + "/" + golden)
        let namespace = try TestNamespace()
        let test = namespace.exec(["iptables-restore", "--test"], input: text)
        #expect(test.status == 0, "iptables-restore --test: \(test.stderr)")
        let load = namespace.exec(["iptables-restore"], input: text)
        try #require(load.status == 0, "iptables-restore: \(load.stderr)")
        #expect(namespace.savedIptables() == text)
    }

    @Test(arguments: goldens("ip6tables"))
    func ip6tablesGoldenLoadsAndSavesIdentically(_ golden: String) throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let text = Repo.read(Repo.golden + "/" + golden)
        let namespace = try TestNamespace()
        let test = namespace.exec(["ip6tables-restore", "--test"], input: text)
        #expect(test.status == 0, "ip6tables-restore --test: \(test.stderr)")
        let load = namespace.exec(["ip6tables-restore"], input: text)
        try #require(load.status == 0, "ip6tables-restore: \(load.stderr)")
        #expect(namespace.savedIp6tables() == text)
    }

    @Test(arguments: goldens("nft"))
    func nftGoldenPassesDryRunAndMatchesJSON(_ golden: String) throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let text = Repo.read(Repo.golden + "/" + golden)
        let namespace = try TestNamespace()
        let dry = try namespace.nftDryRun(text)
        #expect(dry.succeeded, "\(dry.error)")
        let jsonPath = Repo.golden + "/" + golden + ".json"
        try #require(FileManager.default.fileExists(atPath: jsonPath), "every nft golden has a JSON twin")
        let json = Repo.read(jsonPath)
        let jsonDry = try namespace.nftDryRun(json)
        #expect(jsonDry.succeeded, "\(jsonDry.error)")
        let (appliedText, listingFromText) = try namespace.nftApplyAndList(text)
        #expect(appliedText.succeeded, "\(appliedText.error)")
        let other = try TestNamespace()
        let (appliedJSON, listingFromJSON) = try other.nftApplyAndList(json)
        #expect(appliedJSON.succeeded, "\(appliedJSON.error)")
        #expect(!listingFromText.isEmpty && listingFromText == listingFromJSON)
    }
}
