using PamEventStore.Tests.Infrastructure;

namespace PamEventStore.Tests.Internal;

/// <summary>
/// The service loads its Wolverine handlers from committed code (TypeLoadMode.Static). When an
/// endpoint changes and nobody ran `dotnet run --project src/PamEventStore -- codegen write`, the
/// committed code no longer matches: this test says so before a deployment does.
/// </summary>
[Collection(PamStoreCollection.Name)]
public sealed class generated_code_is_current(PamStoreHost store)
{
    private const string Regenerate = "run `rm -rf src/PamEventStore/Internal/Generated && dotnet run --project src/PamEventStore -- codegen write` and commit";

    [Fact]
    public async Task the_committed_handlers_match_what_the_endpoints_generate_now()
    {
        var output = Path.Combine(store.DataDirectory, $"generated-{Guid.NewGuid():N}");
        var settings = new Dictionary<string, string>(TestKeys.ServiceSettings(store.Database.ConnectionString, store.DataDirectory))
        {
            ["Codegen:OutputPath"] = output,
        };

        var (exitCode, log) = await ServiceProcess.RunCommandAsync(settings, "codegen", "write");

        exitCode.ShouldBe(0, log);
        var expected = Files(output);
        var actual = Files(Path.Combine(Repository.ServiceDirectory, "Internal", "Generated"));
        expected.ShouldNotBeEmpty();
        actual.Keys.Order().ShouldBe(expected.Keys.Order(), $"the set of generated files differs: {Regenerate}");
        foreach (var (file, code) in expected) actual[file].ShouldBe(code, $"{file} is stale: {Regenerate}");
    }

    private static Dictionary<string, string> Files(string root) =>
        Directory.EnumerateFiles(root, "*.cs", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(root, f), f => File.ReadAllText(f).ReplaceLineEndings("\n"));
}
