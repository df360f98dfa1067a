import Foundation
import PortcullisLayouts
import PortcullisPolicy
import PortcullisRender

/// Golden files pin what a policy compiles to: `GOLDEN_DIR/<policy name>/<layout>.<extension>`
/// where the extension names the backend output (`iptables`, `ip6tables`, `nft`, `nft.json`).
public struct Goldens: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    /// One golden file and how the current compiler output compares with it.
    public struct Comparison: Sendable {
        public let path: String
        /// nil when equal.
        public let diff: String?
    }

    public static func policyName(_ policyPath: String) -> String {
        let file = (policyPath as NSString).lastPathComponent
        return file.hasSuffix(".policy") ? String(file.dropLast(".policy".count)) : file
    }

    func folder(for policyPath: String) -> String {
        (directory as NSString).appendingPathComponent(Goldens.policyName(policyPath))
    }

    /// The backend whose output a golden file name holds, and its layout.
    static func parse(fileName: String) -> (layout: String, backend: Backend)? {
        let candidates: [(String, Backend)] = [
            (".nft.json", .nftablesJSON), (".nft", .nftables), (".ip6tables", .iptables), (".iptables", .iptables),
        ]
        for (suffix, backend) in candidates where fileName.hasSuffix(suffix) {
            let layout = String(fileName.dropLast(suffix.count))
            if Layouts.named(layout) != nil { return (layout, backend) }
        }
        return nil
    }

    /// Compiles the policy for every golden file it has and compares.
    public func compare(policyPath: String, compiler: Compiler = Compiler()) -> Result<[Comparison], CompileFailure> {
        let folder = folder(for: policyPath)
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted()
        let goldens = files.compactMap { name in Goldens.parse(fileName: name).map { (name, $0) } }
        if goldens.isEmpty {
            return .failure(
                .usage(
                    "no golden files for '\(Goldens.policyName(policyPath))' in \(folder); write them with 'portcullis diff --update'"
                ))
        }
        return compiler.check(policyPath).flatMap { policy, sources in
            var comparisons: [Comparison] = []
            var rendered: [String: [RenderedFile]] = [:]
            for (name, (layout, backend)) in goldens {
                let key = "\(layout)/\(backend.rawValue)"
                if rendered[key] == nil {
                    switch compiler.render(policy, sources: sources, layout: Layouts.named(layout)!, backend: backend) {
                    case .success(let files): rendered[key] = files
                    case .failure(let failure): return .failure(failure)
                    }
                }
                let path = (folder as NSString).appendingPathComponent(name)
                let expected = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
                let actual = rendered[key]!.first { name == "\(layout).\($0.fileExtension)" }?.text ?? ""
                comparisons.append(
                    Comparison(
                        path: path,
                        diff: UnifiedDiff.make(old: expected, new: actual, oldName: path, newName: "compiled")))
            }
            return .success(comparisons)
        }
    }

    /// Rewrites the policy's golden files for every layout and backend that can express it,
    /// and removes golden files for combinations that no longer compile. Returns what changed.
    public func update(policyPath: String, compiler: Compiler = Compiler()) -> Result<[String], CompileFailure> {
        compiler.check(policyPath).flatMap { policy, sources in
            let folder = folder(for: policyPath)
            var wanted: [String: String] = [:]
            for layout in Layouts.all {
                for backend in Backend.allCases {
                    guard
                        case .success(let files) = compiler.render(
                            policy, sources: sources, layout: layout, backend: backend)
                    else { continue }
                    for file in files { wanted["\(layout.name).\(file.fileExtension)"] = file.text }
                }
            }
            var changed: [String] = []
            try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let existing = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter {
                Goldens.parse(fileName: $0) != nil
            }
            for name in existing where wanted[name] == nil {
                let path = (folder as NSString).appendingPathComponent(name)
                try? FileManager.default.removeItem(atPath: path)
                changed.append("removed \(path)")
            }
            for (name, text) in wanted.sorted(by: { $0.key < $1.key }) {
                let path = (folder as NSString).appendingPathComponent(name)
                if (try? String(contentsOfFile: path, encoding: .utf8)) == text { continue }
                do {
                    try text.write(toFile: path, atomically: true, encoding: .utf8)
                } catch {
                    return .failure(.usage("cannot write \(path): \(error.localizedDescription)"))
                }
                changed.append("wrote \(path)")
            }
            return .success(changed)
        }
    }
}
