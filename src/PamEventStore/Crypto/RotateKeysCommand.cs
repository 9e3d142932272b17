using JasperFx.CommandLine;
using Marten;

namespace PamEventStore.Crypto;

public sealed class RotateKeysInput : NetCoreInput
{
    [Description("Only this organisation (default: every organisation that has keys)")]
    public string? OrgFlag { get; set; }

    [Description("Instead of adding data keys, re-wrap every data key with the active master key (after a master key rotation)")]
    public bool RewrapFlag { get; set; }
}

/// <summary>
/// <c>dotnet run --project src/PamEventStore -- rotate-keys [--org ORG] [--rewrap]</c>. Rotation adds a
/// data key and seals new recordings with it; every earlier key stays in the org's ring, so batches
/// sealed with it stay readable. <c>--rewrap</c> re-wraps data keys under the active master key, after
/// which a retired master key can be removed from configuration.
/// </summary>
[Description("Rotate organisations' data keys, or re-wrap them under the active master key", Name = "rotate-keys")]
public sealed class RotateKeysCommand : JasperFxAsyncCommand<RotateKeysInput>
{
    public override async Task<bool> Execute(RotateKeysInput input)
    {
        using var host = input.BuildHost();
        var keys = new OrgDataKeys(
            host.Services.GetRequiredService<IDocumentStore>(),
            host.Services.GetRequiredService<MasterKeys>(),
            host.Services.GetRequiredService<TimeProvider>());

        var orgs = input.OrgFlag is { } org ? [org] : await keys.OrgsAsync(CancellationToken.None);
        foreach (var orgId in orgs)
        {
            if (input.RewrapFlag)
            {
                Console.WriteLine($"{orgId}: re-wrapped {await keys.RewrapAsync(orgId, CancellationToken.None)} data key(s)");
            }
            else
            {
                Console.WriteLine($"{orgId}: new data key {await keys.RotateAsync(orgId, CancellationToken.None)}");
            }
        }

        if (orgs.Count == 0) Console.WriteLine("No organisation has data keys yet.");
        return true;
    }
}
