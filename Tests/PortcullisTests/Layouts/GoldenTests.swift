import Foundation
import PortcullisCompiler
import PortcullisLayouts
import PortcullisRender
import Testing

/// Every shipped policy compiles to exactly its golden files; `portcullis diff` reports drift.
@Suite struct GoldenTests {
    static let policies = Repo.shippedPolicies.map { ($0 as NSString).lastPathComponent }

    @Test func atLeastTwelvePoliciesShip() {
        #expect(Self.policies.count >= 12)
    }

    @Test(arguments: policies)
    func policyMatchesItsGoldenFiles(_ name: String) throws {
        let comparisons = try Goldens(directory: Repo.golden).compare(policyPath: Repo.policies + "/" + name).get()
        #expect(!comparisons.isEmpty)
        for comparison in comparisons {
            #expect(comparison.diff == nil, "\(comparison.diff ?? "")")
        }
    }

    /// Goldens exist for every layout and backend that can express the policy, and only those.
    @Test(arguments: policies)
    func goldenSetIsComplete(_ name: String) throws {
        let compiler = Compiler()
        let (policy, sources) = try compiler.check(Repo.policies + "/" + name).get()
        let folder = Repo.golden + "/" + Goldens.policyName(name)
        let present = Set((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [])
        var expected: Set<String> = []
        for layout in Layouts.all {
            for backend in Backend.allCases {
                if case .success(let files) = compiler.render(
                    policy, sources: sources, layout: layout, backend: backend)
                {
                    for file in files { expected.insert("\(layout.name).\(file.fileExtension)") }
                }
            }
        }
        #expect(present == expected)
    }

    @Test func seedHasItsDocker15Golden() {
        #expect(FileManager.default.fileExists(atPath: Repo.golden + "/seed/docker-1.5.iptables"))
    }

    /// A changed golden file is reported as a unified diff naming the changed rule.
    @Test func driftIsReported() throws {
        let scratch = NSTemporaryDirectory() + "portcullis-golden-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try FileManager.default.createDirectory(atPath: scratch + "/icc-off", withIntermediateDirectories: true)
        let original = Repo.read(Repo.golden + "/icc-off/docker-20.10.iptables")
        let tampered = original.replacingOccurrences(of: "--dport 6379", with: "--dport 6380")
        #expect(tampered != original)
        try tampered.write(toFile: scratch + "/icc-off/docker-20.10.iptables", atomically: true, encoding: .utf8)
        let comparisons = try Goldens(directory: scratch).compare(policyPath: Repo.policies + "/icc-off.policy").get()
        let diff = try #require(comparisons.first?.diff)
        #expect(diff.contains("\n---") == false && diff.hasPrefix("--- "))
        #expect(diff.contains("\n-") && diff.contains("--dport 6380"))
        #expect(diff.contains("\n+") && diff.contains("--dport 6379"))
    }

    /// `--update` writes what compare then accepts, and reports nothing the second time.
    @Test func updateWritesWhatCompareAccepts() throws {
        let scratch = NSTemporaryDirectory() + "portcullis-update-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let goldens = Goldens(directory: scratch)
        let first = try goldens.update(policyPath: Repo.policies + "/web-stack.policy").get()
        // docker-20.10, docker-23, docker-25, docker-28 and docker-29 with three backends each;
        // native with two
        #expect(first.count == 17)
        #expect(try goldens.update(policyPath: Repo.policies + "/web-stack.policy").get().isEmpty)
        #expect(
            try goldens.compare(policyPath: Repo.policies + "/web-stack.policy").get().allSatisfy { $0.diff == nil })
    }
}
