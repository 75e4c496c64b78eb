//! DASH MPDs: an ffmpeg `-f dash` style MPD and a multi-period MPD.

use super::*;

const FF_HEAD: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>
<MPD xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"
\txmlns=\"urn:mpeg:dash:schema:mpd:2011\"
\txmlns:xlink=\"http://www.w3.org/1999/xlink\"
\txsi:schemaLocation=\"urn:mpeg:DASH:schema:MPD:2011 http://standards.iso.org/ittf/PubliclyAvailableStandards/MPEG-DASH_schema_files/DASH-MPD.xsd\"
\tprofiles=\"urn:mpeg:dash:profile:isoff-live:2011\"
\ttype=\"static\"
\tmediaPresentationDuration=\"PT1M0.0S\"
\tmaxSegmentDuration=\"PT4.0S\"
\tminBufferTime=\"PT8.0S\">
\t<ProgramInformation>
\t</ProgramInformation>
\t<ServiceDescription id=\"0\">
\t</ServiceDescription>
\t<Period id=\"0\" start=\"PT0.0S\">
\t\t<AdaptationSet id=\"0\" contentType=\"video\" startWithSAP=\"1\" segmentAlignment=\"true\" bitstreamSwitching=\"true\" frameRate=\"30/1\" maxWidth=\"1920\" maxHeight=\"1080\" par=\"16:9\" lang=\"und\">
";

fn ff_rep(id: u32, codecs: &str, bw: u64, w: u32, h: u32) -> String {
    format!(
        "\t\t\t<Representation id=\"{id}\" mimeType=\"video/mp4\" codecs=\"{codecs}\" bandwidth=\"{bw}\" width=\"{w}\" height=\"{h}\" sar=\"1:1\">
\t\t\t\t<SegmentTemplate timescale=\"15360\" initialization=\"init-stream$RepresentationID$.m4s\" media=\"chunk-stream$RepresentationID$-$Number%05d$.m4s\" startNumber=\"1\">
\t\t\t\t\t<SegmentTimeline>
\t\t\t\t\t\t<S t=\"0\" d=\"61440\" r=\"14\" />
\t\t\t\t\t</SegmentTimeline>
\t\t\t\t</SegmentTemplate>
\t\t\t</Representation>
"
    )
}

const FF_AUDIO: &str = "\t\t</AdaptationSet>
\t\t<AdaptationSet id=\"1\" contentType=\"audio\" startWithSAP=\"1\" segmentAlignment=\"true\" bitstreamSwitching=\"true\" lang=\"und\">
\t\t\t<Representation id=\"4\" mimeType=\"audio/mp4\" codecs=\"mp4a.40.2\" bandwidth=\"128000\" audioSamplingRate=\"48000\">
\t\t\t\t<AudioChannelConfiguration schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" value=\"2\" />
\t\t\t\t<SegmentTemplate timescale=\"48000\" initialization=\"init-stream$RepresentationID$.m4s\" media=\"chunk-stream$RepresentationID$-$Number%05d$.m4s\" startNumber=\"1\">
\t\t\t\t\t<SegmentTimeline>
\t\t\t\t\t\t<S t=\"0\" d=\"192512\" r=\"14\" />
\t\t\t\t\t</SegmentTimeline>
\t\t\t\t</SegmentTemplate>
\t\t\t</Representation>
\t\t\t<Representation id=\"5\" mimeType=\"audio/mp4\" codecs=\"mp4a.40.2\" bandwidth=\"64000\" audioSamplingRate=\"48000\">
\t\t\t\t<SegmentTemplate timescale=\"48000\" initialization=\"init-stream$RepresentationID$.m4s\" media=\"chunk-stream$RepresentationID$-$Number%05d$.m4s\" startNumber=\"1\"/>
\t\t\t</Representation>
\t\t</AdaptationSet>
\t</Period>
</MPD>
";

fn reps() -> [String; 4] {
    [
        ff_rep(0, "avc1.640028", 5_000_000, 1920, 1080),
        ff_rep(1, "hev1.1.6.L120.90", 3_000_000, 1920, 1080),
        ff_rep(2, "avc1.4d401f", 2_500_000, 1280, 720),
        ff_rep(3, "avc1.42c01e", 800_000, 640, 360),
    ]
}

fn ffmpeg_mpd() -> String {
    format!("{FF_HEAD}{}{FF_AUDIO}", reps().concat())
}

#[test]
fn ffmpeg_mpd_by_height_and_codec() {
    let r = reps();
    let cases: &[Case] = &[
        (&[("max_height", "720")], &[0, 1]),
        (&[("deny_codecs", "hev1,hvc1")], &[1]),
        (&[("max_bandwidth", "2600000")], &[0, 1]),
        (&[("max_bandwidth", "1")], &[0, 1]),
        // The AdaptationSet says 30/1: a 30 fps cap keeps everything.
        (&[("max_frame_rate", "30")], &[]),
        (&[("max_frame_rate", "25")], &[0, 1]),
    ];
    for (pairs, dropped) in cases {
        let edit = run_with(pairs, &dash_head(), &ffmpeg_mpd());
        let gone: Vec<&str> = dropped.iter().map(|i| r[*i].as_str()).collect();
        if gone.is_empty() {
            assert!(edit.is_empty(), "{pairs:?}");
            continue;
        }
        assert_eq!(body_of(&edit), without(&ffmpeg_mpd(), &gone), "{pairs:?}");
        // Audio is never touched.
        assert!(body_of(&edit).contains("bandwidth=\"64000\""));
        let want = format!("kept={} dropped={}", 6 - dropped.len(), dropped.len());
        assert!(
            report(&edit).is_some_and(|r| r.starts_with(&want)),
            "{pairs:?}"
        );
    }
}

#[test]
fn crlf_mpd() {
    let crlf = ffmpeg_mpd().replace('\n', "\r\n");
    let edit = run_with(&[("max_height", "720")], &dash_head(), &crlf);
    let r = reps();
    assert_eq!(
        body_of(&edit),
        without(&ffmpeg_mpd(), &[&r[0], &r[1]]).replace('\n', "\r\n")
    );
}

const MULTI: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- Two periods: an ad, then the programme. <Representation id="commented" bandwidth="99999999" width="7680" height="4320"/> -->
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT70S" minBufferTime="PT2S" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">
  <Period id="ad" duration="PT10S">
    <AdaptationSet mimeType="video/mp4" codecs="avc1.4d401f" frameRate="30000/1001" segmentAlignment="true">
      <SegmentTemplate media="ad/$RepresentationID$/$Number$.m4s" initialization="ad/$RepresentationID$/init.mp4" duration="2" startNumber="1"/>
      <Representation id="ad-hd" bandwidth="4000000" width="1920" height="1080"/>
      <Representation id="ad-sd" bandwidth="1000000" width="960" height="540"/>
    </AdaptationSet>
  </Period>
  <Period id="main" duration="PT60S">
    <BaseURL>main/</BaseURL>
    <AdaptationSet mimeType="video/mp4" segmentAlignment="true" maxWidth="3840" maxHeight="2160">
      <ContentProtection schemeIdUri="urn:mpeg:dash:mp4protection:2011" value="cenc"/>
      <SegmentTemplate media="$RepresentationID$/$Number$.m4s" initialization="$RepresentationID$/init.mp4" duration="2" startNumber="1"/>
      <Representation id="uhd" bandwidth="16000000" width="3840" height="2160" codecs="hvc1.2.4.L153.B0" frameRate="60"/>
      <Representation id="fhd60" bandwidth="7000000" width="1920" height="1080" codecs="avc1.640032" frameRate="60"/>
      <Representation id="fhd" bandwidth="5000000" width="1920" height="1080" codecs="avc1.640028" frameRate="30"/>
      <Representation id="hd" bandwidth="3000000" width="1280" height="720" codecs="avc1.4d401f" frameRate="30"/>
      <Representation id="sd" bandwidth="1200000" width="854" height="480" codecs="avc1.4d401e" frameRate="30"/>
    </AdaptationSet>
    <AdaptationSet mimeType="audio/mp4" codecs="mp4a.40.2" lang="en">
      <Representation id="aac-hi" bandwidth="192000"/>
      <Representation id="aac-lo" bandwidth="96000"/>
    </AdaptationSet>
    <AdaptationSet mimeType="application/mp4" codecs="stpp" contentType="text" lang="en">
      <Representation id="subs" bandwidth="2000"/>
    </AdaptationSet>
    <AdaptationSet segmentAlignment="true">
      <Representation id="untyped-hi" mimeType="video/mp4" bandwidth="9000000" width="1920" height="1080"/><Representation id="untyped-lo" mimeType="video/mp4" bandwidth="900000" width="640" height="360"/>
      <Representation id="untyped-mid" mimeType="video/mp4" bandwidth="2000000" width="1280" height="720"/>
    </AdaptationSet>
  </Period>
</MPD>
"#;

fn line_of(id: &str) -> String {
    let line = MULTI
        .lines()
        .find(|l| {
            l.trim_start()
                .starts_with(&format!("<Representation id=\"{id}\""))
        })
        .unwrap();
    format!("{line}\n")
}

#[test]
fn multi_period_mpd() {
    let edit = run_with(&[("max_height", "720")], &dash_head(), MULTI);
    let body = body_of(&edit);
    // The ad period's two Representations: the lowest and one more stay.
    assert!(body.contains("id=\"ad-hd\""));
    // `untyped-hi` shares its line with `untyped-lo`: only its bytes go.
    let expected = without(MULTI, &[&line_of("uhd"), &line_of("fhd60"), &line_of("fhd")]).replacen(
        r#"<Representation id="untyped-hi" mimeType="video/mp4" bandwidth="9000000" width="1920" height="1080"/>"#,
        "",
        1,
    );
    assert_eq!(body, expected);
    // The commented-out Representation is untouched; audio and text too.
    assert!(body.contains("id=\"commented\""));
    assert!(body.contains("id=\"aac-hi\""));
    assert!(body.contains("id=\"subs\""));
}

#[test]
fn multi_period_inherits_codecs_and_frame_rate() {
    // The ad set's codecs/frameRate come from the AdaptationSet.
    let edit = run_with(&[("deny_codecs", "avc1")], &dash_head(), MULTI);
    let body = body_of(&edit);
    // Ad period: both avc1, two Representations: both stay (keep two).
    assert!(body.contains("id=\"ad-hd\"") && body.contains("id=\"ad-sd\""));
    // Main: every avc1 dropped except the lowest and the next-lowest... the
    // uhd (hvc1) is admitted, so sd (lowest) + uhd remain.
    assert!(body.contains("id=\"uhd\"") && body.contains("id=\"sd\""));
    for gone in ["fhd60", "fhd\"", "hd\""] {
        assert!(!body.contains(&format!("id=\"{gone}")), "{gone}");
    }
    let edit = run_with(&[("max_frame_rate", "29.97")], &dash_head(), MULTI);
    let body = body_of(&edit);
    assert!(body.contains("id=\"ad-hd\""));
    assert!(!body.contains("id=\"fhd\""));
    assert!(body.contains("id=\"sd\"") && body.contains("id=\"hd\""));
}

#[test]
fn dash_idempotent_and_passthrough() {
    let pairs = [("max_height", "720")];
    let once = body_of(&run_with(&pairs, &dash_head(), MULTI));
    assert!(run_with(&pairs, &dash_head(), &once).is_empty());
    // Not an MPD, or no Representations: untouched.
    assert!(run_with(&pairs, &dash_head(), "<html></html>").is_empty());
    assert!(run_with(&pairs, &dash_head(), "<MPD><Period/></MPD>").is_empty());
    // Sniffed without a content type.
    assert!(!run_with(&pairs, &ResponseHead::new(200), MULTI).is_empty());
}
