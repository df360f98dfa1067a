/// A unified diff (`diff -u` format) between two texts, for golden-file mismatches.
public enum UnifiedDiff {
    enum Line {
        case same(String)
        case removed(String)
        case added(String)
    }

    /// nil when the texts are equal.
    public static func make(old: String, new: String, oldName: String, newName: String, context: Int = 3) -> String? {
        guard old != new else { return nil }
        let a = lines(old)
        let b = lines(new)
        let difference = b.difference(from: a)
        var removed = Set<Int>()
        var inserted = Set<Int>()
        for change in difference {
            switch change {
            case .remove(let offset, _, _): removed.insert(offset)
            case .insert(let offset, _, _): inserted.insert(offset)
            }
        }
        var script: [(Line, Int, Int)] = []  // line, old index, new index (before the line)
        var i = 0
        var j = 0
        while i < a.count || j < b.count {
            if i < a.count && removed.contains(i) {
                script.append((.removed(a[i]), i, j))
                i += 1
            } else if j < b.count && inserted.contains(j) {
                script.append((.added(b[j]), i, j))
                j += 1
            } else {
                script.append((.same(a[i]), i, j))
                i += 1
                j += 1
            }
        }
        var out = "--- \(oldName)\n+++ \(newName)\n"
        var index = 0
        while index < script.count {
            guard let firstChange = script[index...].firstIndex(where: { if case .same = $0.0 { false } else { true } })
            else {
                break
            }
            let start = max(index, firstChange - context)
            var end = firstChange
            // Extend the hunk while the next change is within 2 * context unchanged lines.
            var cursor = firstChange
            while cursor < script.count {
                if case .same = script[cursor].0 {
                    let nextChange = script[cursor...].firstIndex(where: {
                        if case .same = $0.0 { false } else { true }
                    })
                    if let nextChange, nextChange - cursor <= 2 * context {
                        cursor = nextChange
                        continue
                    }
                    break
                }
                end = cursor
                cursor += 1
            }
            let stop = min(script.count, end + 1 + context)
            let hunk = script[start..<stop]
            let oldCount = hunk.filter { if case .added = $0.0 { false } else { true } }.count
            let newCount = hunk.filter { if case .removed = $0.0 { false } else { true } }.count
            let oldStart = oldCount == 0 ? hunk.first!.1 : hunk.first!.1 + 1
            let newStart = newCount == 0 ? hunk.first!.2 : hunk.first!.2 + 1
            out += "@@ -\(oldStart),\(oldCount) +\(newStart),\(newCount) @@\n"
            for (line, _, _) in hunk {
                switch line {
                case .same(let text): out += " \(text)\n"
                case .removed(let text): out += "-\(text)\n"
                case .added(let text): out += "+\(text)\n"
                }
            }
            index = stop
        }
        return out
    }

    static func lines(_ text: String) -> [String] {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        return lines
    }
}
