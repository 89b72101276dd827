"""``revise-prep preview RECORD.pkl``: a PNG contact sheet (and optionally an mp4) of a record's frames and latents.

Rows: the source and target frames re-decoded at the indices the record's meta lists and cropped/resized
as step 1 does; with ``--vae``, the record's latents decoded back through that VAE below each. Use it to
see that cropping, orientation and the frame interval are right.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from revise_prep.cli.options import parse_size

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("preview", help="PNG contact sheet of a record: re-decoded frames and decoded latents",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("record", help="a step-1 or step-2 record (.pkl)")
    p.add_argument("--video-root", default=".", help="folder the record's relative video paths are resolved against")
    p.add_argument("--out", help="PNG to write (default: ./<record name>_preview.png)")
    p.add_argument("--vae", help="Wan VAE checkpoint (release dir, Wan2.1_VAE.pth, diffusers dir or hub id): "
                                 "adds rows with the record's latents decoded back")
    p.add_argument("--device", default="cpu", help="device for the VAE decode (default cpu)")
    p.add_argument("--video", help="also write an mp4 of all the record's frames over time")
    p.add_argument("--max-frames", type=int, default=9, help="columns: frames shown, evenly spread (default 9)")
    p.add_argument("--max-tile-width", type=int, default=256, help="tiles wider than this are shrunk (default 256)")
    p.add_argument("--target-video", help="the target video (records of the original script do not name it)")
    g = p.add_argument_group("frames (only for records without meta, e.g. made by the original script)")
    g.add_argument("--frame-num", "--frame_num", dest="frame_num", type=int, help="default: the record's frame_num")
    g.add_argument("--sampling-rate", "--sampling_rate", "--interval", dest="interval", type=int,
                   help="requested frame interval the record was made with (required without meta)")
    g.add_argument("--skip-num", "--skip_num", dest="skip", type=int, default=0, help="frames skipped at the start")
    g.add_argument("--target-size", "--target_size", dest="target_size", type=parse_size,
                   help="HEIGHT,WIDTH (default: 8x the latent's size)")
    g.add_argument("--exact-frame-count", dest="strict_count", action="store_false",
                   help="the record was made with --exact-frame-count")
    g.add_argument("--no-auto-rotate", dest="auto_rotate", action="store_false",
                   help="the record was made with --no-auto-rotate (records with meta say so themselves)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from revise_prep.errors import InputError
    from revise_prep.records.preview import PreviewError, make_preview
    from revise_prep.records.reader import DamagedRecordError
    from revise_prep.records.safe_pickle import UnsafePickleError
    from revise_prep.records.naming import name_budget, writable_name

    if args.max_frames < 1:
        raise InputError("--max-frames must be >= 1")
    out = args.out or f"{writable_name(Path(args.record).stem, name_budget('.', '_preview.png'))}_preview.png"
    try:
        result = make_preview(args.record, out, video_root=args.video_root, vae_path=args.vae, video_out=args.video,
                              max_frames=args.max_frames, max_tile_w=args.max_tile_width, interval=args.interval,
                              frame_num=args.frame_num, skip=args.skip, size=args.target_size,
                              strict_count=args.strict_count, target_video=args.target_video, device=args.device,
                              auto_rotate=args.auto_rotate)
    except PreviewError as err:
        raise InputError(f"{args.record}: {err}") from err
    except (DamagedRecordError, UnsafePickleError) as err:  # a problem found in the file: one line
        log.error("%s", err)
        return 1
    width, height = result["size"]
    print(f"{result['png']}  {width}x{height}  rows: {len(result['rows'])}  columns: {len(result['positions'])}")
    if "video" in result:
        print(result["video"])
    return 0
