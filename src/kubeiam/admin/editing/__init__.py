"""Mapping editing: what `kubeiam mapping` and the IAM workflows use to change the mappings.

Not to be confused with :mod:`kubeiam.mapping`, the model the server loads. One module per thing:

* :mod:`.editor`: the read-change-guard-backup-write loop (:class:`~.editor.MappingEditor`);
* :mod:`.guards`: node entries and the last ``system:masters`` entry are not removed by accident;
* :mod:`.diff`: the unified diff a dry run shows;
* :mod:`.document`: the :class:`~.document.MappingDocument` protocol every store document follows,
  one module per document: :mod:`.aws_auth_document`, :mod:`.file_document` (with
  :mod:`.file_text`, the line-preserving splicer of YAML files), :mod:`.crd_document`;
* :mod:`.store`: the :class:`~.store.MappingStore` protocol; :mod:`.kube_stores` (aws-auth, CRD)
  and :mod:`.file_store` implement it; :mod:`.backups`: the history every store keeps;
* :mod:`.writer`: the :class:`~.writer.MappingWriter` seam of the IAM workflows, implemented over
  any store by :mod:`.store_writer`;
* :mod:`.lint`, :mod:`.explain` (pure functions over a loaded mapping) and :mod:`.terminal`
  (text safe to print).
"""
